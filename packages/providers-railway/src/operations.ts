/**
 * Every GraphQL operation the provider sends, in one place. A test validates each against Railway's
 * published schema (reference/railway/schema.json), so a field renamed or removed upstream fails CI here.
 * Listing uses `environment(id).serviceInstances` (the non-deprecated path), one paginated query per pass.
 */

/** What the pool reads of a service: name, age, image, latest deployment status and public domain. */
const InstanceFields = /* GraphQL */ `
  fragment InstanceFields on ServiceInstance {
    serviceId
    serviceName
    createdAt
    source { image }
    latestDeployment { status }
    domains { serviceDomains { domain } }
  }
`

/** Services of one environment; one page. */
export const ListServiceInstances = /* GraphQL */ `
  query ListServiceInstances($environmentId: String!, $first: Int!, $after: String) {
    environment(id: $environmentId) {
      serviceInstances(first: $first, after: $after) {
        edges { node { ...InstanceFields } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
  ${InstanceFields}
`

/** The project's name and environments (to resolve RAILWAY_ENVIRONMENT_NAME). */
export const ProjectEnvironments = /* GraphQL */ `
  query ProjectEnvironments($projectId: String!) {
    project(id: $projectId) {
      id
      name
      environments { edges { node { id name } } }
    }
  }
`

/** What a project token is scoped to; fails for account and workspace tokens. */
export const ProjectTokenScope = /* GraphQL */ `
  query ProjectTokenScope {
    projectToken { projectId environmentId }
  }
`

const aliases = (count: number, render: (i: number) => string) => Array.from({ length: count }, (_, i) => render(i)).join("\n")

/**
 * Step 1 of a create, for many services in one request (alias `s<i>`, input `$s<i>`): services with a name
 * and nothing else. Without a source nothing deploys, so no deploy can start before its config exists.
 */
export const serviceCreateBatch = (count: number) => /* GraphQL */ `
  mutation ServiceCreateBatch(${aliases(count, (i) => `$s${i}: ServiceCreateInput!`)}) {
    ${aliases(count, (i) => `s${i}: serviceCreate(input: $s${i}) { id }`)}
  }
`

/**
 * Step 2, for many services in one request: the public domains they lack (alias `d<i>`), then one atomic
 * environment commit that gives each its image and variables and deploys each once. GraphQL runs a
 * request's mutations in order, so every first deploy starts with its variables and its domain.
 */
export const serviceLaunchBatch = (domains: number) => /* GraphQL */ `
  mutation ServiceLaunchBatch($environmentId: String!, $patch: EnvironmentConfig, $commitMessage: String${domains > 0 ? ", " : ""}${aliases(domains, (i) => `$d${i}: ServiceDomainCreateInput!`).split("\n").join(", ")}) {
    ${aliases(domains, (i) => `d${i}: serviceDomainCreate(input: $d${i}) { domain }`)}
    commit: environmentPatchCommit(environmentId: $environmentId, patch: $patch, commitMessage: $commitMessage)
  }
`

/** A service's variables (for `db:enrich`: gateway token and inbox id of rows that lack them). */
export const ServiceVariables = /* GraphQL */ `
  query ServiceVariables($projectId: String!, $environmentId: String!, $serviceId: String!) {
    variables(projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId)
  }
`

/** A fresh deployment of what a service runs now (its image, its variables): a new container. */
export const ServiceInstanceRedeploy = /* GraphQL */ `
  mutation ServiceInstanceRedeploy($environmentId: String!, $serviceId: String!) {
    serviceInstanceRedeploy(environmentId: $environmentId, serviceId: $serviceId)
  }
`

export const ServiceDelete = /* GraphQL */ `
  mutation ServiceDelete($id: String!, $environmentId: String) {
    serviceDelete(id: $id, environmentId: $environmentId)
  }
`

/** The workspace's notification rules: where a webhook registration looks before creating one. */
export const NotificationRules = /* GraphQL */ `
  query NotificationRules($workspaceId: String!, $projectId: String) {
    notificationRules(workspaceId: $workspaceId, projectId: $projectId) { id eventTypes channels { id config } }
  }
`

export const NotificationRuleCreate = /* GraphQL */ `
  mutation NotificationRuleCreate($input: CreateNotificationRuleInput!) {
    notificationRuleCreate(input: $input) { id }
  }
`

/** Points an existing rule at a new URL (the secret changed) instead of adding a second rule. */
export const NotificationRuleUpdate = /* GraphQL */ `
  mutation NotificationRuleUpdate($id: String!, $input: UpdateNotificationRuleInput!) {
    notificationRuleUpdate(id: $id, input: $input) { id }
  }
`

/** Every document the provider sends (batches shown with two and with no aliases), for the schema test. */
export const operations = {
  ListServiceInstances,
  ProjectEnvironments,
  ProjectTokenScope,
  ServiceCreateBatch: serviceCreateBatch(2),
  ServiceLaunchBatch: serviceLaunchBatch(2),
  ServiceLaunchBatchNoDomain: serviceLaunchBatch(0),
  ServiceDelete,
  ServiceInstanceRedeploy,
  ServiceVariables,
  NotificationRules,
  NotificationRuleCreate,
  NotificationRuleUpdate
} as const

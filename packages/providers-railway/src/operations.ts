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

/** What the pool reads of a volume: which service it belongs to, by name, and how big it is. */
const VolumeFields = /* GraphQL */ `
  fragment VolumeFields on VolumeInstance {
    volumeId
    serviceId
    mountPath
    sizeMB
    createdAt
    volume { name }
  }
`

/** Services of one environment, and its volumes when asked; one page of each. */
export const ListServiceInstances = /* GraphQL */ `
  query ListServiceInstances($environmentId: String!, $first: Int!, $after: String, $volumes: Boolean!, $volumesAfter: String) {
    environment(id: $environmentId) {
      serviceInstances(first: $first, after: $after) {
        edges { node { ...InstanceFields } }
        pageInfo { hasNextPage endCursor }
      }
      volumeInstances(first: $first, after: $volumesAfter) @include(if: $volumes) {
        edges { node { ...VolumeFields } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
  ${InstanceFields}
  ${VolumeFields}
`

/**
 * The pool's projects with their services (and volumes), one page of the workspace's projects per request:
 * one listing across all projects, not one per project. A project with more services than `$services`
 * continues with `ListServiceInstances` on its environment.
 */
export const ListWorkspaceProjects = /* GraphQL */ `
  query ListWorkspaceProjects($workspaceId: String!, $first: Int!, $after: String, $services: Int!, $volumes: Boolean!) {
    workspace(workspaceId: $workspaceId) {
      projects(first: $first, after: $after) {
        edges {
          node {
            id
            name
            createdAt
            environments(first: 5) {
              edges {
                node {
                  id
                  name
                  serviceInstances(first: $services) {
                    edges { node { ...InstanceFields } }
                    pageInfo { hasNextPage endCursor }
                  }
                  volumeInstances(first: $services) @include(if: $volumes) {
                    edges { node { ...VolumeFields } }
                    pageInfo { hasNextPage endCursor }
                  }
                }
              }
            }
          }
        }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
  ${InstanceFields}
  ${VolumeFields}
`

/** What the pool reads of a project it made: its environment comes with it (named after the pool's environment). */
const CreatedProject = /* GraphQL */ `
  fragment CreatedProject on Project {
    id
    name
    createdAt
    environments { edges { node { id name } } }
  }
`

/** A project in the workspace, with the environment it starts with. */
export const ProjectCreate = /* GraphQL */ `
  mutation ProjectCreate($input: ProjectCreateInput!) {
    projectCreate(input: $input) { ...CreatedProject }
  }
  ${CreatedProject}
`

/** A project and everything in it (services, volumes). */
export const ProjectDelete = /* GraphQL */ `
  mutation ProjectDelete($id: String!) {
    projectDelete(id: $id)
  }
`

/** A volume attached to a service that has not deployed yet, so that its first deploy mounts it. */
export const VolumeCreate = /* GraphQL */ `
  mutation VolumeCreate($input: VolumeCreateInput!) {
    volumeCreate(input: $input) { id name }
  }
`

export const VolumeDelete = /* GraphQL */ `
  mutation VolumeDelete($volumeId: String!) {
    volumeDelete(volumeId: $volumeId)
  }
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

/** What one launch request holds besides its environment commits (one per environment, `commits`). */
export interface LaunchShape {
  readonly commits: number
  /** Public domains to make (alias `d<i>`). */
  readonly domains?: number
  /** Volumes to name after their services (alias `v<i>`). */
  readonly volumes?: number
  /** Projects to name after the instance they now hold (alias `n<i>`): a spare project taken by a create. */
  readonly renames?: number
  /** A new spare project (alias `spare`), last: it rides along when a token is free to make one. */
  readonly spare?: boolean
}

/**
 * Step 2, for many services in one request: the public domains they lack (alias `d<i>`), their volumes named
 * after them (alias `v<i>`: a volume is known as the pool's by its name), spare projects named after their
 * instance (alias `n<i>`), then one atomic environment commit per environment (alias `c<i>`) that gives each
 * service its image and variables and deploys each once, and last, maybe, the next spare project. GraphQL runs
 * a request's mutations in order, so every first deploy starts with its variables, its domain and its volume.
 */
export const serviceLaunchBatch = ({ commits, domains = 0, renames = 0, spare = false, volumes = 0 }: LaunchShape) => {
  const parameters = [
    ...aliases(commits, (i) => `$e${i}: String!, $p${i}: EnvironmentConfig`).split("\n"),
    "$commitMessage: String",
    ...aliases(domains, (i) => `$d${i}: ServiceDomainCreateInput!`).split("\n"),
    ...aliases(volumes, (i) => `$v${i}: String!, $vn${i}: VolumeUpdateInput!`).split("\n"),
    ...aliases(renames, (i) => `$n${i}: String!, $nn${i}: ProjectUpdateInput!`).split("\n"),
    spare ? "$spare: ProjectCreateInput!" : ""
  ].filter((p) => p !== "")
  return /* GraphQL */ `
  mutation ServiceLaunchBatch(${parameters.join(", ")}) {
    ${aliases(domains, (i) => `d${i}: serviceDomainCreate(input: $d${i}) { domain }`)}
    ${aliases(volumes, (i) => `v${i}: volumeUpdate(volumeId: $v${i}, input: $vn${i}) { id }`)}
    ${aliases(renames, (i) => `n${i}: projectUpdate(id: $n${i}, input: $nn${i}) { id }`)}
    ${aliases(commits, (i) => `c${i}: environmentPatchCommit(environmentId: $e${i}, patch: $p${i}, commitMessage: $commitMessage)`)}
    ${spare ? "spare: projectCreate(input: $spare) { ...CreatedProject }" : ""}
  }
  ${spare ? CreatedProject : ""}
`
}

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
  ServiceLaunchBatch: serviceLaunchBatch({ commits: 1, domains: 2 }),
  ServiceLaunchBatchNoDomain: serviceLaunchBatch({ commits: 1 }),
  ServiceLaunchBatchAcrossProjects: serviceLaunchBatch({ commits: 2, domains: 2, volumes: 2 }),
  ServiceLaunchBatchWithSpare: serviceLaunchBatch({ commits: 2, domains: 2, volumes: 2, renames: 2, spare: true }),
  ListWorkspaceProjects,
  ProjectCreate,
  ProjectDelete,
  VolumeCreate,
  VolumeDelete,
  ServiceDelete,
  ServiceInstanceRedeploy,
  ServiceVariables,
  NotificationRules,
  NotificationRuleCreate,
  NotificationRuleUpdate
} as const

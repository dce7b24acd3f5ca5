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

/** One service's instance in the environment: what a resumed create still has to do. */
export const GetServiceInstance = /* GraphQL */ `
  query GetServiceInstance($environmentId: String!, $serviceId: String!) {
    serviceInstance(environmentId: $environmentId, serviceId: $serviceId) { ...InstanceFields }
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

/** Step 1 of a create: the service, with no source yet, so nothing deploys before its config exists. */
export const ServiceCreate = /* GraphQL */ `
  mutation ServiceCreate($input: ServiceCreateInput!) {
    serviceCreate(input: $input) { id name createdAt }
  }
`

/** Step 2: the variables, without triggering a deploy. */
export const VariableCollectionUpsert = /* GraphQL */ `
  mutation VariableCollectionUpsert($input: VariableCollectionUpsertInput!) {
    variableCollectionUpsert(input: $input)
  }
`

/** Step 3: the public domain. */
export const ServiceDomainCreate = /* GraphQL */ `
  mutation ServiceDomainCreate($input: ServiceDomainCreateInput!) {
    serviceDomainCreate(input: $input) { domain }
  }
`

/** Step 4: the image... */
export const ServiceInstanceUpdate = /* GraphQL */ `
  mutation ServiceInstanceUpdate($environmentId: String!, $serviceId: String!, $input: ServiceInstanceUpdateInput!) {
    serviceInstanceUpdate(environmentId: $environmentId, serviceId: $serviceId, input: $input)
  }
`

/** ...and step 5, the first deploy: it starts with the variables and the domain in place. */
export const ServiceInstanceDeploy = /* GraphQL */ `
  mutation ServiceInstanceDeploy($environmentId: String!, $serviceId: String!) {
    serviceInstanceDeployV2(environmentId: $environmentId, serviceId: $serviceId)
  }
`

/** A service's variables (for `db:enrich`: gateway token and inbox id of rows that lack them). */
export const ServiceVariables = /* GraphQL */ `
  query ServiceVariables($projectId: String!, $environmentId: String!, $serviceId: String!) {
    variables(projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId)
  }
`

export const ServiceDelete = /* GraphQL */ `
  mutation ServiceDelete($id: String!, $environmentId: String) {
    serviceDelete(id: $id, environmentId: $environmentId)
  }
`

export const operations = {
  ListServiceInstances,
  GetServiceInstance,
  ProjectEnvironments,
  ProjectTokenScope,
  ServiceCreate,
  VariableCollectionUpsert,
  ServiceDomainCreate,
  ServiceInstanceUpdate,
  ServiceInstanceDeploy,
  ServiceDelete,
  ServiceVariables
} as const

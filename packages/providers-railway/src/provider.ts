/**
 * `ComputeProvider` over Railway. One paginated, environment-scoped query lists a pool per pass (never one
 * query per service); a create runs in the order that makes the first deploy see its variables and domain
 * (the seed lost about one instance in ten otherwise); every step is idempotent, so a retried or resumed
 * create completes the service it began instead of making a twin.
 */
import { ComputeProvider, type CreatedService, InvalidRequestError, type ProviderError, retryRemote, ServiceInfo } from "@warmpool/reconciler"
import { Context, Effect, Layer, Option, Ref, type Scope } from "effect"
import { makeRailwayClient, type RequestOptions } from "./client.js"
import { RailwayConfig, type RailwayOptions, type TokenKind } from "./config.js"
import * as Ops from "./operations.js"

interface InstanceNode {
  readonly serviceId: string
  readonly serviceName: string
  readonly createdAt: string
  readonly source: { readonly image: string | null } | null
  readonly latestDeployment: { readonly status: string } | null
  readonly domains: { readonly serviceDomains: ReadonlyArray<{ readonly domain: string }> }
}

interface ListPage {
  readonly environment: {
    readonly serviceInstances: {
      readonly edges: ReadonlyArray<{ readonly node: InstanceNode }>
      readonly pageInfo: { readonly hasNextPage: boolean; readonly endCursor: string | null }
    }
  }
}

const toServiceInfo = (node: InstanceNode) =>
  new ServiceInfo({
    serviceId: node.serviceId,
    name: node.serviceName,
    url: node.domains.serviceDomains[0] ? `https://${node.domains.serviceDomains[0].domain}` : null,
    deployStatus: node.latestDeployment?.status ?? null,
    image: node.source?.image ?? null,
    createdAt: new Date(node.createdAt)
  })

/** What the provider knows once connected: the token's kind and the environment's id. */
export interface RailwayContext {
  readonly kind: TokenKind
  readonly projectId: string
  readonly projectName: string
  readonly environmentId: string
  readonly environmentName: string
}

export const connect = (options: RailwayOptions) =>
  Effect.gen(function*() {
    const client = yield* makeRailwayClient(options)
    const kind: TokenKind = options.tokenKind !== "auto"
      ? options.tokenKind
      : yield* client.request("projectTokenScope", Ops.ProjectTokenScope, {}, "project", { probe: true }).pipe(
        Effect.as("project" as const),
        Effect.catchTag("UnauthorizedError", () => Effect.succeed("account" as const))
      )
    const request = <A>(operation: string, document: string, variables: object, requestOptions?: RequestOptions) =>
      Effect.map(client.request<A>(operation, document, variables, kind, requestOptions), (answer) => answer.data)
    const requestWithHeaders = <A>(operation: string, document: string, variables: object) =>
      client.request<A>(operation, document, variables, kind)

    const project = yield* request<{ project: { name: string; environments: { edges: ReadonlyArray<{ node: { id: string; name: string } }> } } }>(
      "projectEnvironments",
      Ops.ProjectEnvironments,
      { projectId: options.projectId }
    )
    const environments = project.project.environments.edges.map((e) => e.node)
    const wanted = options.environment
    const environment = "id" in wanted
      ? environments.find((e) => e.id === wanted.id)
      : environments.find((e) => e.name.toLowerCase() === wanted.name.toLowerCase())
    if (environment === undefined) {
      const asked = "id" in wanted ? `id ${wanted.id}` : `name "${wanted.name}"`
      return yield* new InvalidRequestError({
        operation: "railway.resolveEnvironment",
        message: `project ${options.projectId} has no environment with ${asked}; it has: ${environments.map((e) => `${e.name} (${e.id})`).join(", ") || "none"}`
      })
    }
    const context: RailwayContext = {
      kind,
      projectId: options.projectId,
      projectName: project.project.name,
      environmentId: environment.id,
      environmentName: environment.name
    }
    return { context, request, requestWithHeaders }
  })

export const make = (options: RailwayOptions): Effect.Effect<ComputeProvider["Type"], ProviderError, Scope.Scope> =>
  Effect.gen(function*() {
    const { context, request } = yield* connect(options)
    const { environmentId, projectId } = context

    const listAll = (prefix: string) =>
      Effect.iterate({ after: null as string | null, services: [] as ReadonlyArray<ServiceInfo>, done: false }, {
        while: (s) => !s.done,
        body: (s) =>
          request<ListPage>("listServiceInstances", Ops.ListServiceInstances, { environmentId, first: options.pageSize, after: s.after }).pipe(
            Effect.map(({ environment }) => {
              const page = environment.serviceInstances
              return {
                after: page.pageInfo.endCursor,
                services: [...s.services, ...page.edges.map((e) => toServiceInfo(e.node)).filter((x) => x.name.startsWith(prefix))],
                done: !page.pageInfo.hasNextPage
              }
            })
          )
      }).pipe(Effect.map((s) => s.services), Effect.withSpan("RailwayCompute.list"))

    const findByName = (name: string) => Effect.map(listAll(name), (services) => Option.fromNullable(services.find((s) => s.name === name)))

    /** The service named `name`: found if an earlier try made it, created otherwise. Never a twin. */
    const ensureService = (name: string): Effect.Effect<string, ProviderError> =>
      Effect.gen(function*() {
        const tried = yield* Ref.make(false)
        const byName = (orElse: ProviderError) =>
          Effect.flatMap(findByName(name), Option.match({ onSome: (s) => Effect.succeed(s.serviceId), onNone: () => Effect.fail(orElse) }))
        const attempt = Effect.gen(function*() {
          // A timed-out try may have succeeded: look before trying again.
          if (yield* Ref.getAndSet(tried, true)) {
            const found = yield* findByName(name)
            if (Option.isSome(found)) return found.value.serviceId
          }
          return yield* request<{ serviceCreate: { id: string } }>("serviceCreate", Ops.ServiceCreate, { input: { projectId, environmentId, name } }, { retry: false }).pipe(
            Effect.map((r) => r.serviceCreate.id),
            Effect.catchTag("ConflictError", byName)
          )
        })
        return yield* retryRemote()(attempt)
      })

    const create = (input: { readonly name: string; readonly image: string; readonly env: Readonly<Record<string, string>> }) =>
      Effect.gen(function*() {
        const serviceId = yield* ensureService(input.name)
        // Variables and the domain first, with deploys skipped: the first deploy must start with them.
        yield* request("variableCollectionUpsert", Ops.VariableCollectionUpsert, {
          input: { projectId, environmentId, serviceId, variables: input.env, skipDeploys: true }
        })
        const { serviceInstance } = yield* request<{ serviceInstance: InstanceNode }>("getServiceInstance", Ops.GetServiceInstance, { environmentId, serviceId })
        const existing = serviceInstance.domains.serviceDomains[0]?.domain
        const domain = existing ?? (yield* request<{ serviceDomainCreate: { domain: string } }>("serviceDomainCreate", Ops.ServiceDomainCreate, {
          input: { environmentId, serviceId, targetPort: Number(input.env.PORT ?? 8080) }
        })).serviceDomainCreate.domain
        if (serviceInstance.latestDeployment === null) {
          yield* request("serviceInstanceUpdate", Ops.ServiceInstanceUpdate, { environmentId, serviceId, input: { source: { image: input.image } } })
          yield* request("serviceInstanceDeploy", Ops.ServiceInstanceDeploy, { environmentId, serviceId })
        }
        const created: CreatedService = { serviceId, url: `https://${domain}`, deployStatus: serviceInstance.latestDeployment?.status ?? "QUEUED" }
        return created
      }).pipe(Effect.withSpan("RailwayCompute.create", { attributes: { name: input.name } }))

    const destroy = (serviceId: string) =>
      request("serviceDelete", Ops.ServiceDelete, { id: serviceId, environmentId }).pipe(
        Effect.asVoid,
        Effect.catchTag("NotFoundError", () => Effect.void), // already gone
        Effect.withSpan("RailwayCompute.destroy")
      )

    return ComputeProvider.of({ list: listAll, create, destroy })
  })

/** Reads a service's variables: what `db:enrich` recovers gateway tokens and inbox ids from. */
export class ServiceVariables extends Context.Tag("@warmpool/providers-railway/ServiceVariables")<
  ServiceVariables,
  { readonly read: (serviceId: string) => Effect.Effect<Readonly<Record<string, string>>, ProviderError> }
>() {}

const makeVariables = (options: RailwayOptions) =>
  Effect.map(connect(options), ({ context, request }) =>
    ServiceVariables.of({
      read: (serviceId) =>
        request<{ variables: Record<string, string> }>("serviceVariables", Ops.ServiceVariables, {
          projectId: context.projectId,
          environmentId: context.environmentId,
          serviceId
        }).pipe(Effect.map((r) => r.variables))
    }))

export const RailwayServiceVariables = {
  layer: (options: RailwayOptions): Layer.Layer<ServiceVariables, ProviderError> => Layer.scoped(ServiceVariables, makeVariables(options)),
  layerConfig: Layer.unwrapEffect(Effect.map(RailwayConfig, (options) => Layer.scoped(ServiceVariables, makeVariables(options))))
}

export const RailwayCompute = {
  /** From options (library users, tests). Fails at build when the token or the environment is wrong. */
  layer: (options: RailwayOptions): Layer.Layer<ComputeProvider, ProviderError> => Layer.scoped(ComputeProvider, make(options)),
  /** From RAILWAY_* environment variables. */
  layerConfig: Layer.unwrapEffect(Effect.map(RailwayConfig, (options) => Layer.scoped(ComputeProvider, make(options))))
}

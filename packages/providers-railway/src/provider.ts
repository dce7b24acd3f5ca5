/**
 * `ComputeProvider` over Railway. One paginated, environment-scoped query lists a pool per pass (never one
 * query per service). Creates are batched: the creates that arrive together cost two requests whatever
 * their number — the services (aliased `serviceCreate`s), then their domains and one environment commit
 * that gives each its image and variables and deploys each once, so every first deploy starts with its
 * variables and domain (the seed lost about one instance in ten otherwise). Nothing is read back that a
 * mutation already answered. When a batch fails, its creates are completed from one listing: a retried or
 * resumed create finishes the service it began (found by name) instead of making a twin.
 */
import {
  ComputeProvider,
  type CreatedService,
  type CreateServiceRequest,
  InvalidRequestError,
  makeGroupCommit,
  type ProviderError,
  retryRemote,
  ServiceInfo,
  ServiceUpgrader,
  TransientError
} from "@warmpool/reconciler"
import { Clock, Context, Duration, Effect, Either, Layer, type Scope } from "effect"
import { makeRailwayClient, type RequestOptions } from "./client.js"
import { RailwayConfig, type RailwayOptions, type TokenKind } from "./config.js"
import * as Ops from "./operations.js"
import { isTight, type RailwayUsage } from "./usage.js"

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
    const usage = client.usage

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
    return { context, request, requestWithHeaders, usage }
  })

/** One service to launch: made already, maybe with its domain (its URL, when it has one). */
interface LaunchTarget extends CreateServiceRequest {
  readonly serviceId: string
  readonly url: string | null
}

/** Railway's environment config: image and variables for each service of the commit (other variables stay). */
export const environmentPatch = (targets: ReadonlyArray<{ readonly serviceId: string; readonly image: string; readonly env: Readonly<Record<string, string>> }>) => ({
  services: Object.fromEntries(targets.map((t) => [t.serviceId, {
    source: { image: t.image },
    variables: Object.fromEntries(Object.entries(t.env).map(([name, value]) => [name, { value }]))
  }]))
})

/** The Railway provider with what the server needs besides `ComputeProvider`. */
export interface RailwayPlatform {
  readonly compute: ComputeProvider["Type"]
  readonly context: RailwayContext
  readonly usage: Effect.Effect<RailwayUsage>
  readonly request: <A>(operation: string, document: string, variables: object, requestOptions?: RequestOptions) => Effect.Effect<A, ProviderError>
}

export const makePlatform = (options: RailwayOptions): Effect.Effect<RailwayPlatform, ProviderError, Scope.Scope> =>
  Effect.gen(function*() {
    const { context, request, usage } = yield* connect(options)
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

    /** Services with these names and nothing else: one request. Not retried (a retry would conflict). */
    const makeServices = (items: ReadonlyArray<CreateServiceRequest>) =>
      request<Record<string, { id: string }>>(
        "serviceCreateBatch",
        Ops.serviceCreateBatch(items.length),
        Object.fromEntries(items.map((item, i) => [`s${i}`, { projectId, environmentId, name: item.name }])),
        { retry: false }
      ).pipe(Effect.map((answer) => items.map((_, i) => answer[`s${i}`]!.id)))

    /** Domains for the targets that lack one, then image, variables and a first deploy for each: one request. */
    const launch = (targets: ReadonlyArray<LaunchTarget>) =>
      Effect.gen(function*() {
        const lacking = targets.filter((t) => t.url === null)
        const answer = yield* request<Record<string, { domain: string }>>("serviceLaunchBatch", Ops.serviceLaunchBatch(lacking.length), {
          environmentId,
          patch: environmentPatch(targets),
          commitMessage: `warmpool: launch ${targets.map((t) => t.name).join(", ")}`,
          ...Object.fromEntries(lacking.map((t, i) => [`d${i}`, { environmentId, serviceId: t.serviceId, targetPort: Number(t.env.PORT ?? 8080) }]))
        }, { retry: false })
        const domains = new Map(lacking.map((t, i) => [t.serviceId, `https://${answer[`d${i}`]!.domain}`]))
        return targets.map((t): CreatedService => ({ serviceId: t.serviceId, url: t.url ?? domains.get(t.serviceId)!, deployStatus: "QUEUED" }))
      })

    /** The happy path: two requests for any number of creates. */
    const createFresh = (items: ReadonlyArray<CreateServiceRequest>) =>
      Effect.flatMap(makeServices(items), (ids) => launch(items.map((item, i) => ({ ...item, serviceId: ids[i]!, url: null }))))

    /**
     * Completes creates whose outcome is unknown (a failed or timed-out batch, a create resumed after a crash):
     * one listing says which services exist and which have deployed; only what is missing is made.
     */
    const complete = (items: ReadonlyArray<CreateServiceRequest>) =>
      Effect.gen(function*() {
        const listed = new Map((yield* listAll("")).map((s) => [s.name, s]))
        const missing = items.filter((item) => !listed.has(item.name))
        const made = new Map<string, string>()
        if (missing.length > 0) {
          const ids = yield* makeServices(missing).pipe(
            // Made meanwhile, or the listing lagged behind: list again rather than guess.
            Effect.catchTag("ConflictError", (e) => new TransientError({ operation: e.operation, message: e.message }))
          )
          missing.forEach((item, i) => made.set(item.name, ids[i]!))
        }
        const results = new Map<string, CreatedService>()
        const targets: Array<LaunchTarget> = []
        for (const item of items) {
          const found = listed.get(item.name)
          if (found !== undefined && found.deployStatus !== null && found.url !== null) {
            results.set(item.name, { serviceId: found.serviceId, url: found.url, deployStatus: found.deployStatus })
          } else targets.push({ ...item, serviceId: found?.serviceId ?? made.get(item.name)!, url: found?.url ?? null })
        }
        if (targets.length > 0) (yield* launch(targets)).forEach((created, i) => results.set(targets[i]!.name, created))
        return items.map((item) => results.get(item.name)!)
      }).pipe(retryRemote())

    // Waiting for company is waiting for other fibers' I/O: wall time, whatever clock the program runs on.
    const wallClock = Clock.make()
    const createWindow = Duration.decode(options.createWindow ?? Duration.millis(100))
    const tightCreateWindow = Duration.decode(options.tightCreateWindow ?? Duration.seconds(8))
    const submitCreate = yield* makeGroupCommit(
      (items: ReadonlyArray<CreateServiceRequest>) =>
        createFresh(items).pipe(
          Effect.orElse(() => complete(items)),
          Effect.map((created) => created.map((c) => Either.right(c) as Either.Either<CreatedService, ProviderError>)),
          // The batch as a whole could not be completed: each on its own, so one bad create fails alone.
          Effect.orElse(() => Effect.forEach(items, (item) => Effect.either(Effect.map(complete([item]), (c) => c[0]!))))
        ),
      {
        maxBatch: options.createBatchMax ?? 50,
        // Creates of one pass arrive a few ms apart: wait that long for company.
        gather: Effect.sleep(createWindow).pipe(Effect.withClock(wallClock))
      }
    )

    const create = (input: CreateServiceRequest) =>
      submitCreate(input).pipe(
        Effect.flatMap((result) => result),
        Effect.withSpan("RailwayCompute.create", { attributes: { name: input.name } })
      )

    const destroy = (serviceId: string) =>
      request("serviceDelete", Ops.ServiceDelete, { id: serviceId, environmentId }).pipe(
        Effect.asVoid,
        Effect.catchTag("NotFoundError", () => Effect.void), // already gone
        Effect.withSpan("RailwayCompute.destroy")
      )

    // When the budget runs low, refills wait so that the creates of several claims share their two requests.
    const refillDelay = Effect.map(usage, (u) => (isTight(u) ? tightCreateWindow : Duration.zero))

    return { compute: ComputeProvider.of({ list: listAll, create, destroy, refillDelay }), context, usage, request }
  })

/**
 * `ServiceUpgrader` over a connected platform: an existing service moves onto a new template with one environment
 * commit (image and variables together, one deploy); its own variables (per-instance secrets) stay. Its requests
 * share the platform's limiter and budget.
 */
export const upgraderOf = ({ context: { environmentId }, request }: Pick<RailwayPlatform, "context" | "request">): ServiceUpgrader["Type"] =>
  ServiceUpgrader.of({
    redeploy: (serviceId, template) =>
      request("environmentPatchCommit", Ops.serviceLaunchBatch(0), {
        environmentId,
        patch: environmentPatch([{ serviceId, ...template }]),
        commitMessage: `warmpool: upgrade ${serviceId} to ${template.image}`
      }).pipe(Effect.asVoid, Effect.withSpan("RailwayUpgrader.redeploy", { attributes: { serviceId } })),
    restart: (serviceId) =>
      request("serviceInstanceRedeploy", Ops.ServiceInstanceRedeploy, { environmentId, serviceId }).pipe(
        Effect.asVoid,
        Effect.withSpan("RailwayUpgrader.restart", { attributes: { serviceId } })
      )
  })

export const make = (options: RailwayOptions): Effect.Effect<ComputeProvider["Type"], ProviderError, Scope.Scope> =>
  Effect.map(makePlatform(options), (platform) => platform.compute)

/** The connected Railway provider: its context, budget and requests (webhook registration, dashboard). */
export class Railway extends Context.Tag("@warmpool/providers-railway/Railway")<Railway, RailwayPlatform>() {}

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

const platformLayer = (options: RailwayOptions): Layer.Layer<ComputeProvider | ServiceUpgrader | Railway, ProviderError> =>
  Layer.scopedContext(Effect.map(makePlatform(options), (platform) =>
    Context.make(Railway, platform).pipe(Context.add(ComputeProvider, platform.compute), Context.add(ServiceUpgrader, upgraderOf(platform)))))

export const RailwayCompute = {
  /** From options (library users, tests). Fails at build when the token or the environment is wrong. */
  layer: platformLayer,
  /** From RAILWAY_* environment variables. */
  layerConfig: Layer.unwrapEffect(Effect.map(RailwayConfig, platformLayer))
}

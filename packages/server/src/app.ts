/**
 * The server, assembled from Layers: the database (DATABASE_URL, or an embedded Postgres), the Postgres
 * store and leadership, a compute provider, the credentials (Convos secrets + OpenRouter + AgentMail), the
 * runtime clients, the controller, and the HTTP API with its dashboard, docs and metrics.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as OpenApi from "@effect/platform/OpenApi"
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { AgentMailCredentials } from "@warmpool/providers-agentmail"
import { ConvosRuntime } from "@warmpool/providers-convos"
import { LocalCompute } from "@warmpool/providers-local"
import { OpenRouterCredentials, OpenRouterKeysLive } from "@warmpool/providers-openrouter"
import { RailwayCompute, RailwayConfig, webhookSecret } from "@warmpool/providers-railway"
import { type ComputeProvider, combinedCredentialsLayer, Credentials, InstanceStore, type PoolSpec, Pools, spansExported, StoreDeadline } from "@warmpool/reconciler"
import { type RunningPostgres, startEmbeddedPostgres } from "@warmpool/embedded-postgres"
import { PgIncarnations, PgPoolEvents } from "@warmpool/reconciler-pg"
import { Console, Duration, Effect, Either, Layer, Option, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import { createServer } from "node:http"
import { join } from "node:path"
import { PoolApi } from "./api/api.js"
import type { Deployment, ServerSettings } from "./config.js"
import { carryOverSeedPool } from "./pools.js"
import { ConvosSecrets } from "./convos/secrets.js"
import { DatabaseHealthLive } from "./database-health.js"
import { pgClientLayer } from "./postgres-client.js"
import { SeedInstanceStore } from "./convos/seed-table.js"
import { migrateServerTables } from "./migrations.js"
import { DashboardHistory, type HistoryOptions } from "./dashboard/history.js"
import { PgHistoryStore } from "./dashboard/pg-history-store.js"
import { dashboardRoutes } from "./dashboard/routes.js"
import { dashboardHtml } from "./http/dashboard.js"
import { docsPage } from "./http/docs.js"
import { AuthorizationLive, PoolLive, PublicLive } from "./http/handlers.js"
import { poolsInContext } from "./http/pools.js"
import { renderPrometheus } from "./http/metrics.js"
import { kubernetesWatchTriggers } from "./kubernetes/watch-triggers.js"
import { registrationLayer } from "./railway/registration.js"
import { railwayWebhookRoute } from "./railway/webhook.js"
import { InstanceLive } from "./http/instance-routes.js"
import { Coordination, inProcessCoordination } from "./coordination/coordination.js"
import { PgCoordination } from "./coordination/pg-coordination.js"
import { ImageDigests, ImageDigestsLive } from "./registry/image-digests.js"
import { AboutLive, OperateLive } from "./http/operate.js"
import { settledPoolsLayer } from "./settings/pool-settings.js"

/** Request bodies past this are refused (413) before they are read. */
export const MAX_BODY_BYTES = 64 * 1024

/** The API key: POOL_API_KEY, or in local mode a generated one (printed once); railway mode requires it. */
export const resolveApiKey = (settings: ServerSettings): Either.Either<{ key: Redacted.Redacted<string>; generated: boolean }, string> =>
  Option.match(settings.apiKey, {
    onSome: (key) => Either.right({ key, generated: false }),
    onNone: () =>
      settings.provider === "local"
        ? Either.right({ key: Redacted.make(randomBytes(24).toString("base64url")), generated: true })
        : Either.left(`POOL_API_KEY: required with the ${settings.provider} provider (instances and clients authenticate with it)`)
  })

/** The start-up banner's line on the embedded database: where its data is, and why when not where asked. */
const describeEmbedded = (running: RunningPostgres) =>
  running.relocatedFrom === undefined
    ? `  database: embedded Postgres in ${running.dataDir}`
    : `  database: embedded Postgres in ${running.dataDir} (the postgres user it runs as cannot enter ${running.relocatedFrom}; set WARMPOOL_DATA_DIR to choose)`

/** Postgres: DATABASE_URL, or an embedded server kept in `<dataDir>/pg` (or its stand-in, see `startEmbeddedPostgres`). Migrated on start. */
export const databaseLayer = (settings: ServerSettings) =>
  Option.match(settings.databaseUrl, {
    onSome: pgClientLayer,
    onNone: () =>
      Layer.unwrapScoped(
        Effect.map(
          startEmbeddedPostgres({ dataDir: join(settings.dataDir, "pg") }).pipe(Effect.tap((running) => Console.log(describeEmbedded(running)))),
          (running) => pgClientLayer(running.url)
        )
      )
  }).pipe(Layer.tap((context) => Effect.provide(migrateServerTables, context)))

/** The compute provider the settings name. */
export const computeLayer = (settings: ServerSettings): Layer.Layer<ComputeProvider, unknown> =>
  settings.provider === "railway"
    ? RailwayCompute.layerConfig
    : settings.provider === "kubernetes"
    // Also the instances' health: their Pods' Ready condition, which the kubelet keeps from /pool/health.
    // Loaded only here: the Kubernetes client alone costs a server that does not use it about 50 MB of memory.
    ? Layer.unwrapEffect(Effect.map(Effect.promise(() => import("@warmpool/providers-kubernetes")), (kubernetes) => kubernetes.KubernetesCompute.layerConfig))
    : LocalCompute.layer({ dataDir: join(settings.dataDir, "local"), startupDelayMs: 5_000 })

/** Convos secrets, an OpenRouter key and an AgentMail inbox per instance (each only when configured). */
export const credentialsLayer = combinedCredentialsLayer([
  Effect.succeed(ConvosSecrets),
  Effect.provide(Credentials, OpenRouterCredentials.layerConfig),
  Effect.provide(Credentials, AgentMailCredentials.layerConfig)
]).pipe(Layer.provide(FetchHttpClient.layer))

/** `/`, `/metrics` and `/openapi.json`: routes beside the API (the dashboard's own are in dashboard/routes.ts). */
const extraRoutes = HttpApiBuilder.Router.use((router) =>
  Effect.all([
    router.get("/", HttpServerResponse.html(dashboardHtml)),
    router.get("/metrics", Effect.sync(() => HttpServerResponse.text(renderPrometheus(), { contentType: "text/plain; version=0.0.4" }))),
    router.get("/openapi.json", HttpServerResponse.json(OpenApi.fromApi(PoolApi))),
    router.get("/docs", HttpServerResponse.html(docsPage(OpenApi.fromApi(PoolApi))))
  ])
)

const isJson = (text: string) => {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

export interface HttpOptions {
  readonly environment: ServerSettings["environment"]
  readonly apiKey: Redacted.Redacted<string>
  /** POOL_CLAIM_KEYS: keys that may claim, nothing else. */
  readonly claimKeys?: ReadonlyArray<Redacted.Redacted<string>>
  /** What `/api/pool/info` and `/version` say. Default: the environment, branch "unknown", no service id. */
  readonly deployment?: Deployment
  /** The secret of `/webhooks/railway/:secret`. Default: derived from the API key. */
  readonly webhookSecret?: Redacted.Redacted<string>
  /** The dashboard's history: sample interval, retention, the platform's request limit (its pools: the controller's). */
  readonly dashboard?: Omit<HistoryOptions, "pools">
}

/** The dashboard's history of every pool. */
const historyLayer = (options: HttpOptions["dashboard"] = {}) =>
  Layer.unwrapEffect(Effect.map(poolsInContext, (pools) => DashboardHistory.layer({ ...options, pools: pools.all.map((c) => c.spec.name) })))

/** Statuses that hold a conversation: one instance per conversation among them. */
const holdsConversation = new Set(["claiming", "claimed", "pending_acceptance"])

/**
 * The Coordination in context (Postgres, on a server), or one within this process for an app that serves a
 * single replica without one (a conversation's instance found among the pools' rows).
 */
const coordinationLayer = Layer.unwrapEffect(
  Effect.gen(function*() {
    const given = yield* Effect.serviceOption(Coordination)
    if (Option.isSome(given)) return Layer.succeed(Coordination, given.value)
    const pools = yield* poolsInContext
    const store = yield* InstanceStore
    const activeFor = (joinUrl: string) =>
      Effect.map(Effect.forEach(pools.all, (c) => store.list(c.spec.name)), (each) =>
        Option.fromNullable(each.flat().find((row) => row.attributes.inviteUrl === joinUrl && holdsConversation.has(row.status))?.id))
    return Layer.effect(Coordination, inProcessCoordination(activeFor))
  })
)

/** The ImageDigests in context, or the registries' own (IMAGE_REGISTRY_URL) over fetch. */
const imageDigestsLayer = Layer.unwrapEffect(
  Effect.map(Effect.serviceOption(ImageDigests), Option.match({
    onSome: (digests) => Layer.succeed(ImageDigests, digests),
    onNone: () => ImageDigestsLive.layerConfig.pipe(Layer.provide(FetchHttpClient.layer))
  }))
)

/** Any 503 (no idle instance, database down) says when to come back. A pre-response handler, because error answers are rendered by HttpApi after every middleware. */
const retryAfterOn503: HttpApp.PreResponseHandler = (_, response) =>
  Effect.succeed(response.status === 503 ? HttpServerResponse.setHeader(response, "retry-after", "5") : response)

/** Refuses big bodies by their Content-Length, and says so when a JSON body is not JSON. */
const checkBody = HttpMiddleware.make((inner) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (Number(request.headers["content-length"] ?? 0) > MAX_BODY_BYTES) {
      return HttpServerResponse.unsafeJson({ _tag: "PayloadTooLarge", message: `request bodies are limited to ${MAX_BODY_BYTES} bytes` }, { status: 413 })
    }
    // HttpApiBuilder reads JSON bodies with `orDie`: a body that is not JSON at all would end as an empty
    // 400. Check it here (the body is cached, the handler reads it again for free) and say what is wrong.
    if ((request.headers["content-type"] ?? "").includes("json")) {
      const text = yield* request.text.pipe(Effect.orElseSucceed(() => ""))
      if (text.trim() !== "" && !isJson(text)) {
        return HttpServerResponse.unsafeJson({ _tag: "BadRequest", message: "the request body is not valid JSON" }, { status: 400 })
      }
    }
    return yield* inner
  })
)

/**
 * The HTTP server's span of each request (its URL parsed, headers redacted into attributes: ~6% of a claim's
 * CPU), only when spans leave the process: with Effect's own tracer nobody would ever see it.
 */
const requestSpansWhenExported = <A, E, R>(serve: Layer.Layer<A, E, R>) =>
  Layer.unwrapEffect(Effect.map(spansExported, (exported) => exported ? serve : HttpMiddleware.withTracerDisabledWhen(serve, () => true)))

/**
 * The HTTP API over whatever Controller and store are given, on the `HttpServer` in context.
 * A 503 says when to come back; big bodies are refused. What holds for every request is set once for the
 * server (its fibers inherit it), not per request.
 */
export const httpApiLayer = (options: HttpOptions) =>
  HttpApiBuilder.serve().pipe(
    requestSpansWhenExported,
    Layer.locally(HttpApp.currentPreResponseHandlers, Option.some(retryAfterOn503)),
    Layer.provide(HttpApiBuilder.middleware(checkBody)),
    Layer.provide(Layer.succeed(HttpIncomingMessage.MaxBodySize, Option.some(FileSystem.Size(MAX_BODY_BYTES)))),
    Layer.provide(extraRoutes),
    Layer.provide(railwayWebhookRoute(options.webhookSecret ?? webhookSecret({ secret: Option.none() }, options.apiKey))),
    Layer.provide(dashboardRoutes.pipe(Layer.provide(historyLayer(options.dashboard)))),
    Layer.provide(HttpApiBuilder.api(PoolApi).pipe(
      Layer.provide([
        PublicLive,
        PoolLive(options.environment),
        InstanceLive(options.apiKey),
        AboutLive(options.deployment ?? { environment: options.environment, branch: "unknown", railwayServiceId: "" }),
        OperateLive
      ]),
      Layer.provide([coordinationLayer, imageDigestsLayer])
    )),
    // The bearer checks run per request, around the handlers.
    Layer.provide(AuthorizationLive(options.apiKey, options.claimKeys)),
    HttpServer.withLogAddress
  )

/** The HTTP API on a Node server listening on `port`. */
export const httpLayer = (options: HttpOptions & { readonly port: number; readonly host?: string }) =>
  httpApiLayer(options).pipe(Layer.provide(NodeHttpServer.layer(createServer, { port: options.port, host: options.host ?? "0.0.0.0" })))

/**
 * How long one statement of the store may take before its caller hears "database unavailable": a claim without
 * `waitMs` is answered within a few of these (it makes two or three statements), well within 10 s.
 */
const STORE_DEADLINE = Duration.seconds(3)

/**
 * The whole server for the declared pools (the first is the default), with `compute` as the platform (the
 * settings' provider by default). One lease per pool, named after it: replicas share the pools' passes.
 */
export const serverLayer = (
  settings: ServerSettings,
  apiKey: Redacted.Redacted<string>,
  pools: PoolSpec | ReadonlyArray<PoolSpec>,
  compute: Layer.Layer<ComputeProvider, unknown> = computeLayer(settings)
) => {
  const specs = Array.isArray(pools) ? pools : [pools as PoolSpec]
  const database = databaseLayer(settings).pipe(Layer.tap((context) => Effect.provide(carryOverSeedPool(settings, specs), context)))
  const services = Layer.mergeAll(
    // Every statement bounded: while the database cannot be reached, claims get 503 within seconds (not when it is back).
    StoreDeadline.layer(STORE_DEADLINE).pipe(Layer.provide(SeedInstanceStore)),
    DatabaseHealthLive,
    // Waiting claims on any replica hear of idle instances, and the leader of waiting claims, over LISTEN/NOTIFY.
    PgPoolEvents.layer,
    PgHistoryStore.layer,
    PgIncarnations.layer,
    credentialsLayer,
    ConvosRuntime.layer({ apiKey }).pipe(Layer.provide(FetchHttpClient.layer)),
    // One top-up, one claim per conversation, one claim per Idempotency-Key: across replicas.
    PgCoordination.layer,
    // An instance's own OpenRouter key (its credits), with the management key.
    OpenRouterKeysLive.layerConfig.pipe(Layer.provide(FetchHttpClient.layer)),
    // Last: what the platform provides besides compute (Kubernetes' health from Ready conditions) wins.
    compute
  ).pipe(Layer.provideMerge(database))
  const grace = Duration.millis(settings.shutdownGraceMs)
  // The pools start from the settings changed at run time (kept in Postgres), over the declared ones.
  const controllers = settledPoolsLayer(specs, {
    tickInterval: Duration.millis(settings.pool.tickIntervalMs),
    provisionTimeout: Duration.millis(settings.provisionTimeoutMs),
    protectedInstances: settings.protectedInstances
  })
  const secret = webhookSecret(settings.webhooks, apiKey)
  // On Railway the dashboard draws the requests used against the client's hourly limit (RAILWAY_RATE_PER_HOUR).
  const requestLimit = settings.provider === "railway" ? Effect.map(RailwayConfig, (c) => ({ requestLimitPerHour: c.ratePerHour })) : Effect.succeed({})
  const http = Layer.unwrapEffect(Effect.map(requestLimit, (dashboard) =>
    httpLayer({
      port: settings.port,
      environment: settings.environment,
      apiKey,
      claimKeys: settings.claimKeys,
      deployment: settings.deployment,
      webhookSecret: secret,
      dashboard
    })))
  return gracefulStop(grace).pipe(
    Layer.provideMerge(http),
    Layer.merge(registrationLayer(settings.webhooks, secret)),
    Layer.merge(settings.provider === "kubernetes" ? kubernetesWatchTriggers : Layer.empty),
    Layer.provideMerge(controllers),
    Layer.provideMerge(services)
  )
}

/**
 * Built last, so released first: on a stop every pool stops starting passes, creates and claims (new claims get
 * 503 + Retry-After while the HTTP server still answers) and waits up to `grace` for those in flight; only then
 * do the HTTP server, the leases, the incarnation lock and the database close.
 */
const gracefulStop = (grace: Duration.Duration) =>
  Layer.scopedDiscard(
    Effect.flatMap(Pools, (pools) =>
      Effect.addFinalizer(() =>
        Effect.log(`stopping: finishing what is in flight (up to ${Duration.format(grace)})`).pipe(
          Effect.zipRight(Effect.forEach(pools.all, (controller) => controller.stop(grace), { concurrency: "unbounded", discard: true }))
        )
      ))
  )


/**
 * The HTTP API: the seed pool manager's routes and shapes (its clients keep working), plus warmpool's
 * operator routes. One description serves the handlers, `/openapi.json` and the docs page.
 */
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, HttpApiSchema, HttpApiSecurity, OpenApi } from "@effect/platform"
import { type Instance, MAX_WAIT_MS } from "@warmpool/reconciler"
import { Context, Schema } from "effect"
import { inWords, optionalField, said } from "./in-words.js"

/** Every error answer is `{ _tag, message }`, with the HTTP status its class stands for. */
const fields = { message: Schema.String }
export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", fields, HttpApiSchema.annotations({ status: 400 })) {}
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", fields, HttpApiSchema.annotations({ status: 401 })) {}
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", fields, HttpApiSchema.annotations({ status: 404 })) {}
export class Conflict extends Schema.TaggedError<Conflict>()("Conflict", fields, HttpApiSchema.annotations({ status: 409 })) {}
/** Provisioning failed on every attempt. */
export class BadGateway extends Schema.TaggedError<BadGateway>()("BadGateway", fields, HttpApiSchema.annotations({ status: 502 })) {}
/** The platform cannot do what was asked (e.g. redeploy a service). */
export class NotImplemented extends Schema.TaggedError<NotImplemented>()("NotImplemented", fields, HttpApiSchema.annotations({ status: 501 })) {}
/** No idle instance now, or the database is unreachable. */
export class Unavailable extends Schema.TaggedError<Unavailable>()("Unavailable", fields, HttpApiSchema.annotations({ status: 503 })) {}

/** `/healthz` while the database cannot be reached: not ready (503), and why; the server itself is up. */
export class Degraded extends Schema.TaggedError<Degraded>()("Degraded", {
  ok: Schema.Literal(false),
  status: Schema.Literal("degraded"),
  database: Schema.Literal("unreachable"),
  since: Schema.String,
  message: Schema.String
}, HttpApiSchema.annotations({ status: 503 })) {}

/** A store error as the API answers it: 503, come back later. */
export const databaseUnavailable = (error: { readonly message: string }) => new Unavailable({ message: `database unavailable: ${error.message}` })

/** `Authorization: Bearer <POOL_API_KEY>`, compared in constant time. */
export class Authorization extends HttpApiMiddleware.Tag<Authorization>()("Authorization", {
  failure: Unauthorized,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

const Counts = Schema.Struct({
  creating: Schema.Int,
  starting: Schema.Int,
  idle: Schema.Int,
  claiming: Schema.Int,
  claimed: Schema.Int,
  crashed: Schema.Int,
  deleting: Schema.Int
})

/** The seed's flat counts (summed over pools), plus each pool's. */
const CountsAnswer = Schema.Struct({ ...Counts.fields, pools: Schema.Record({ key: Schema.String, value: Counts }) })

/** A pool as the status shows it: its declared size and template, and its counts. */
/** Autoscaling's inputs and decision (absent for a fixed pool). */
const Sizing = Schema.Struct({
  summary: Schema.String.annotations({ description: "λ = 0.4/s, ready in 95 s (p90) → 45 warm" }),
  claimsPerSecond: Schema.Number.annotations({ description: "The rate sized for: the long window's, or the short window's in a burst" }),
  claimsPerSecondShort: Schema.Number,
  claimsPerSecondLong: Schema.Number,
  burst: Schema.Boolean,
  readySeconds: Schema.Number.annotations({ description: "Create-to-idle time of recent creates at readyPercentile" }),
  readyPercentile: Schema.Int,
  readySamples: Schema.Int,
  demand: Schema.Number.annotations({ description: "Claims expected during one ready time" }),
  desiredWarm: Schema.Int.annotations({ description: "Warm instances the current demand needs" }),
  targetWarm: Schema.Int.annotations({ description: "Warm instances kept: up at once, down after scaleDownAfterMs" })
})

/** An action failing pass after pass (rule 12): backing off, with the reason of its last failure. */
const StuckAction = Schema.Struct({
  key: Schema.String.annotations({ description: "What it acts on: `Kind:instanceId`, or `Kind:serviceId` for a service without a row" }),
  kind: Schema.String,
  failures: Schema.Int.annotations({ description: "Failures in a row" }),
  errorKind: Schema.String,
  reason: Schema.String,
  since: Schema.String,
  retryAt: Schema.String
})

const PoolStatus = Schema.Struct({
  default: Schema.Boolean,
  minIdle: Schema.Int,
  maxTotal: Schema.Int,
  maxSurge: Schema.Int,
  image: Schema.String,
  templateHash: Schema.String,
  counts: Counts,
  sizing: Schema.optional(Sizing),
  stuck: Schema.optional(Schema.Array(StuckAction).annotations({ description: "Actions failing pass after pass, backing off; absent when none" }))
})

/** `?pool=name`: one pool only (filters, or picks the pool an operation acts on). */
const PoolParam = Schema.Struct({ pool: Schema.optional(Schema.String) })

/** An instance as the API shows it: secrets (gateway token, key hash) left out. */
export const PublicInstance = Schema.Struct({
  id: Schema.String,
  pool: Schema.String,
  name: Schema.String,
  status: Schema.String,
  serviceId: Schema.NullOr(Schema.String),
  url: Schema.NullOr(Schema.String),
  deployStatus: Schema.NullOr(Schema.String),
  agentName: Schema.NullOr(Schema.String),
  conversationId: Schema.NullOr(Schema.String),
  inviteUrl: Schema.NullOr(Schema.String),
  createdAt: Schema.String,
  claimedAt: Schema.NullOr(Schema.String),
  statusChangedAt: Schema.String,
  sourceBranch: Schema.NullOr(Schema.String),
  runtimeImage: Schema.NullOr(Schema.String),
  templateHash: Schema.NullOr(Schema.String),
  lastError: Schema.NullOr(Schema.String)
})

const Status = Schema.Struct({ counts: Counts, pools: Schema.Record({ key: Schema.String, value: PoolStatus }), instances: Schema.Array(PublicInstance) })

/** An optional field, as in the replaced system (`null` counts as absent), failing with `words`. */
const optionalOrNull = <S extends Schema.Schema.All>(schema: S, words: string) => optionalField(said(Schema.NullOr(schema), words))

export const ClaimBody = inWords(Schema.Struct({
  agentName: optionalOrNull(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)), "agentName must be a string of 1 to 200 characters"),
  instructions: optionalOrNull(Schema.String.pipe(Schema.maxLength(20_000)), "instructions must be a string of at most 20,000 characters"),
  joinUrl: optionalOrNull(
    Schema.String.pipe(Schema.maxLength(2_000), Schema.filter((u) => URL.canParse(u) && /^https?:/.test(u))),
    "joinUrl must be an http(s) URL of at most 2,000 characters"
  ),
  waitMs: optionalOrNull(
    Schema.Int.pipe(Schema.between(0, MAX_WAIT_MS)),
    `waitMs must be a whole number of milliseconds from 0 to ${MAX_WAIT_MS.toLocaleString("en-US")}`
  ),
  /** The pool to claim from, by the name the replaced system uses; `pool` says the same. Default: the first pool. */
  runtime: optionalOrNull(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(63)), "runtime must be a pool name of 1 to 63 characters"),
  pool: optionalOrNull(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(63)), "pool must be a pool name of 1 to 63 characters")
}))

export const ClaimAnswer = Schema.Struct({
  inviteUrl: Schema.NullOr(Schema.String),
  conversationId: Schema.String,
  instanceId: Schema.String,
  joined: Schema.Boolean,
  gatewayToken: Schema.NullOr(Schema.String),
  gatewayUrl: Schema.NullOr(Schema.String)
})

const Count = (max: number) => Schema.Int.pipe(Schema.between(1, max, { message: () => `count must be a whole number from 1 to ${max}` }))

/** `{ "count": N }` with N a whole number in range. */
const CountBody = (max: number) => Schema.Struct({ count: Count(max), pool: Schema.optional(Schema.String) })

export const MAX_COUNT = 100

const PassSummary = Schema.Struct({
  pass: Schema.Int,
  startedAt: Schema.String,
  durationMs: Schema.Number,
  listing: Schema.String,
  planned: Schema.Record({ key: Schema.String, value: Schema.Int }),
  failed: Schema.Record({ key: Schema.String, value: Schema.Int }),
  errors: Schema.Array(Schema.String),
  applied: Schema.Boolean
})

const Planned = Schema.Struct({
  actions: Schema.Array(Schema.Struct({ pool: Schema.String, kind: Schema.String, id: Schema.optional(Schema.String), detail: Schema.String })),
  /** By pool, the autoscaling ones. */
  sizing: Schema.optional(Schema.Record({ key: Schema.String, value: Sizing }))
})

/** What the pool has spent of its platform's API budget (Railway); all null for a provider without one. */
const Budget = Schema.Struct({
  provider: Schema.NullOr(Schema.Literal("railway")),
  requestsLastHour: Schema.NullOr(Schema.Int),
  hourlyLimit: Schema.NullOr(Schema.Int),
  remaining: Schema.NullOr(Schema.Int),
  rateLimited: Schema.NullOr(Schema.Int),
  byOperation: Schema.Record({ key: Schema.String, value: Schema.Int })
})

/** `DELETE …/:id`: marks an instance for deletion and answers with it. */
const removal = <const Name extends string>(name: Name, path: HttpApiEndpoint.PathSegment, description: string) =>
  HttpApiEndpoint.del(name, path)
    .setPath(Schema.Struct({ id: Schema.String }))
    .addSuccess(PublicInstance)
    .addError(NotFound)
    .addError(Conflict)
    .addError(Unavailable)
    .annotate(OpenApi.Description, description)

export class PublicGroup extends HttpApiGroup.make("public")
  .add(
    HttpApiEndpoint.get("healthz", "/healthz")
      .addSuccess(Schema.Struct({ ok: Schema.Literal(true), status: Schema.Literal("ok") }))
      .addError(Degraded)
  )
  .add(HttpApiEndpoint.get("counts", "/api/pool/counts").setUrlParams(PoolParam).addSuccess(CountsAnswer).addError(BadRequest).addError(Unavailable))
  .annotate(OpenApi.Description, "Open to all: liveness and pool counts (no instance data).")
{}

export class PoolGroup extends HttpApiGroup.make("pool")
  .add(HttpApiEndpoint.get("status", "/api/pool/status").setUrlParams(PoolParam).addSuccess(Status).addError(BadRequest).addError(Unavailable))
  .add(
    HttpApiEndpoint.post("claim", "/api/pool/claim")
      .setPayload(ClaimBody)
      .addSuccess(ClaimAnswer)
      .addError(BadRequest)
      .addError(BadGateway)
      .addError(Unavailable)
      .annotate(
        OpenApi.Description,
        "Claims an idle instance and provisions its conversation. With `waitMs`, waits up to that long (at most 120,000 ms) for one when none is idle, first come first served. 503 with Retry-After when none is idle (in time); 502 when provisioning failed on every attempt."
      )
  )
  .add(
    HttpApiEndpoint.post("claimStream", "/api/pool/claim/stream")
      .setPayload(ClaimBody)
      .addSuccess(Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/event-stream" })))
      .addError(BadRequest)
      .annotate(
        OpenApi.Description,
        "The claim, as Server-Sent Events: `queued` {position} while it waits, `claimed` {instanceId}, `provisioning` {instanceId}, then `done` (the body /claim answers) or `error` ({status, _tag, message}: the status and body /claim would have answered)."
      )
  )
  .add(
    HttpApiEndpoint.post("replenish", "/api/pool/replenish")
      .setPayload(Schema.NullOr(Schema.Struct({ count: Schema.optional(Count(MAX_COUNT)), pool: Schema.optional(Schema.String) })))
      .setUrlParams(PoolParam)
      .addSuccess(PassSummary)
      .addError(BadRequest)
      .addError(Unavailable)
      .annotate(OpenApi.Description, "`{count: N}` creates N instances now (capped by the pool's maximum); an empty body runs a pass. `pool` (body or `?pool=`) picks the pool; default the first.")
  )
  .add(
    HttpApiEndpoint.post("drain", "/api/pool/drain").setPayload(CountBody(MAX_COUNT)).setUrlParams(PoolParam)
      .addSuccess(Schema.Struct({ drained: Schema.Array(Schema.String) })).addError(BadRequest).addError(Unavailable)
  )
  .add(
    HttpApiEndpoint.post("reconcile", "/api/pool/reconcile").setUrlParams(PoolParam).addSuccess(PassSummary).addError(BadRequest).addError(Unavailable)
      .annotate(OpenApi.Description, "Runs a pass of `?pool=` now (default: every pool, answering with the default pool's pass).")
  )
  .add(
    HttpApiEndpoint.get("plan", "/api/pool/plan").setUrlParams(PoolParam).addSuccess(Planned).addError(BadRequest).addError(Unavailable)
      .annotate(OpenApi.Description, "Dry run: the actions the next pass of each pool (or of `?pool=`) would take, with their reasons; rollouts included.")
  )
  .add(
    HttpApiEndpoint.post("upgrade", "/api/pool/instances/:id/upgrade")
      .setPath(Schema.Struct({ id: Schema.String }))
      .addSuccess(PublicInstance)
      .addError(NotFound)
      .addError(Conflict)
      .addError(BadGateway)
      .addError(NotImplemented)
      .addError(Unavailable)
      .annotate(OpenApi.Description, "Redeploys a claimed instance onto its pool's current template (image and env); its conversation stays. Unclaimed instances are rolled by the pool itself.")
  )
  .add(
    HttpApiEndpoint.get("budget", "/api/pool/budget")
      .addSuccess(Budget)
      .annotate(OpenApi.Description, "Platform API requests used in the last hour against the plan's limit (Railway), by operation, and 429s.")
  )
  .add(removal("kill", "/api/pool/instances/:id", "Kills an instance, claimed ones included: its service and credentials go."))
  .add(removal("dismiss", "/api/pool/crashed/:id", "Dismisses a crashed instance: its service and credentials go."))
  .middleware(Authorization)
  .annotate(OpenApi.Description, "Needs `Authorization: Bearer <POOL_API_KEY>`.")
{}

/** The instance that authenticated with its own gateway token. */
export class CurrentInstance extends Context.Tag("@warmpool/server/CurrentInstance")<CurrentInstance, Instance>() {}

/** `Authorization: Bearer <OPENCLAW_GATEWAY_TOKEN>` of one instance (never POOL_API_KEY), compared in constant time. */
export class GatewayAuthorization extends HttpApiMiddleware.Tag<GatewayAuthorization>()("GatewayAuthorization", {
  failure: Schema.Union(Unauthorized, Unavailable),
  provides: CurrentInstance,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

export class InstanceGroup extends HttpApiGroup.make("instance")
  .add(
    HttpApiEndpoint.post("selfDestruct", "/api/pool/self-destruct")
      .addSuccess(Schema.Struct({ instanceId: Schema.String, status: Schema.Literal("deleting") }))
      .addError(Unavailable)
      .annotate(OpenApi.Description, "An instance asks to be removed: its row goes to `deleting`, then its key, inbox and service go.")
  )
  .middleware(GatewayAuthorization)
  .annotate(OpenApi.Description, "For instances: needs `Authorization: Bearer <OPENCLAW_GATEWAY_TOKEN>`, the instance's own token.")
{}

export class PoolApi extends HttpApi.make("warmpool")
  .add(PublicGroup)
  .add(PoolGroup)
  .add(InstanceGroup)
  .annotate(OpenApi.Title, "warmpool: the Convos agent pool manager")
{}

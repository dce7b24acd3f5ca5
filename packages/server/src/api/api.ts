/**
 * The HTTP API: the seed pool manager's routes and shapes (its clients keep working), plus warmpool's
 * operator routes. One description serves the handlers, `/openapi.json` and the docs page.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as OpenApi from "@effect/platform/OpenApi"
import { MAX_WAIT_MS } from "@warmpool/reconciler"
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
/** The key is valid but its scope does not cover this route (a POOL_CLAIM_KEYS key outside claims). */
export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", fields, HttpApiSchema.annotations({ status: 403 })) {}
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

/** What the key in use may do: everything (POOL_API_KEY), or claim only (a POOL_CLAIM_KEYS key). */
export type Scope = "operator" | "claim"
export class KeyScope extends Context.Tag("@warmpool/server/KeyScope")<KeyScope, Scope>() {}

/**
 * `Authorization: Bearer <POOL_API_KEY>` (or, on the claim routes, a POOL_CLAIM_KEYS key), compared in
 * constant time. A claim key anywhere else is a 403.
 */
export class Authorization extends HttpApiMiddleware.Tag<Authorization>()("Authorization", {
  failure: Schema.Union(Unauthorized, Forbidden),
  provides: KeyScope,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

const Counts = Schema.Struct({
  creating: Schema.Int,
  starting: Schema.Int,
  idle: Schema.Int,
  claiming: Schema.Int,
  claimed: Schema.Int,
  pending_acceptance: Schema.Int,
  tainted: Schema.Int,
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
  profileImage: Schema.NullOr(Schema.String),
  metadata: Schema.NullOr(Schema.Record({ key: Schema.String, value: Schema.String })),
  source: Schema.NullOr(Schema.String),
  runtimeImage: Schema.NullOr(Schema.String),
  /** The version the instance's runtime reported with its health answer, when it reports one. */
  runtimeVersion: Schema.NullOr(Schema.String),
  templateHash: Schema.NullOr(Schema.String),
  lastError: Schema.NullOr(Schema.String)
})

const Status = Schema.Struct({ counts: Counts, pools: Schema.Record({ key: Schema.String, value: PoolStatus }), instances: Schema.Array(PublicInstance) })

/** An optional field, as in the replaced system (`null` counts as absent), failing with `words`. */
const optionalOrNull = <S extends Schema.Schema.All>(schema: S, words: string) => optionalField(said(Schema.NullOr(schema), words))

/** What the replaced system's later clients send besides: stored on the instance and handed to the runtime. */
const claimExtras = {
  profileImage: optionalOrNull(Schema.String.pipe(Schema.maxLength(2_000)), "profileImage must be a string of at most 2,000 characters"),
  metadata: optionalOrNull(
    Schema.Record({ key: Schema.String, value: Schema.String }).pipe(Schema.filter((m) => JSON.stringify(m).length <= 8_000)),
    "metadata must be an object of strings, at most 8,000 characters as JSON"
  ),
  source: optionalOrNull(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(100)), "source must be a string of 1 to 100 characters")
}

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
  pool: optionalOrNull(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(63)), "pool must be a pool name of 1 to 63 characters"),
  ...claimExtras
}))

/** The claim's answer: the replaced system's fields (`status`, `agentName` included) and the gateway token. */
export const ClaimAnswer = Schema.Struct({
  inviteUrl: Schema.NullOr(Schema.String),
  /** Null while the join awaits acceptance. */
  conversationId: Schema.NullOr(Schema.String),
  instanceId: Schema.String,
  joined: Schema.Boolean,
  status: Schema.Literal("claimed", "pending_acceptance"),
  agentName: Schema.String,
  gatewayToken: Schema.NullOr(Schema.String),
  gatewayUrl: Schema.NullOr(Schema.String)
})

/** The conversation already has its instance (claiming, claimed or awaiting acceptance), or a claim for it is running. */
export class ConversationTaken extends Schema.TaggedError<ConversationTaken>()(
  "ConversationTaken",
  { message: Schema.String, instanceId: Schema.NullOr(Schema.String) },
  HttpApiSchema.annotations({ status: 409 })
) {}

/** A stream of Server-Sent Events. */
const EventStream = Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/event-stream" }))

/** `Idempotency-Key`: a retried claim answers as the first one did (for 24 h) instead of claiming again. */
const ClaimHeaders = Schema.Struct({ "idempotency-key": Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(255))) })

/** `GET /api/pool/claim/stream`'s query: the claim's fields as the browser's EventSource sends them (metadata as JSON). */
export const ClaimStreamParams = Schema.Struct({
  agentName: Schema.optional(Schema.String),
  instructions: Schema.optional(Schema.String),
  joinUrl: Schema.optional(Schema.String),
  profileImage: Schema.optional(Schema.String),
  source: Schema.optional(Schema.String),
  runtime: Schema.optional(Schema.String),
  pool: Schema.optional(Schema.String),
  metadata: Schema.optional(Schema.String)
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
  byOperation: Schema.Record({ key: Schema.String, value: Schema.Int }),
  /** The API tokens (RAILWAY_API_TOKENS): free, cooling after a project or volume creation, dropped after a refusal. */
  tokens: Schema.optional(Schema.Struct({ healthy: Schema.Int, cooling: Schema.Int, dropped: Schema.Int }))
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
      .setHeaders(ClaimHeaders)
      .addSuccess(ClaimAnswer)
      .addError(BadRequest)
      .addError(ConversationTaken)
      .addError(BadGateway)
      .addError(Unavailable)
      .annotate(
        OpenApi.Description,
        "Claims an idle instance (the newest) and provisions its conversation. With `waitMs`, waits up to that long (at most 120,000 ms) for one when none is idle, first come first served. 503 with Retry-After when none is idle (in time); 502 when provisioning failed on every attempt; 409 `ConversationTaken` {instanceId} when `joinUrl`'s conversation already has its instance. With `Idempotency-Key`, a retry answers as the first claim did (24 h)."
      )
  )
  .add(
    HttpApiEndpoint.get("claimStreamGet", "/api/pool/claim/stream").setUrlParams(ClaimStreamParams).addSuccess(EventStream).addError(BadRequest)
      .annotate(
        OpenApi.Description,
        "The claim for a browser's EventSource (the replaced system's): unnamed events `{type: \"step\", step: claim|provision|convo|cleanup, status: active|ok|fail|skip, message}`, then `{type: \"complete\", ok: true, …the claim's answer}` or `{type: \"complete\", ok: false, error}`. `metadata` is a JSON object."
      )
  )
  .add(
    HttpApiEndpoint.post("claimStream", "/api/pool/claim/stream").setPayload(ClaimBody).addSuccess(EventStream).addError(BadRequest)
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

/**
 * An instance's own calls, as the replaced runtime makes them: `{instanceId, gatewayToken}` in the JSON body.
 * Any other JSON value is refused by the handler with the replaced system's 400, so the body is taken as it comes.
 */
const InstanceCall = Schema.NullOr(Schema.Struct({
  instanceId: Schema.optional(Schema.Unknown),
  gatewayToken: Schema.optional(Schema.Unknown),
  conversationId: Schema.optional(Schema.Unknown)
}))

/** The replaced system's error bodies on these routes: `{"error": "…"}`, the status by class. */
const errorBody = { error: Schema.String }
export class InstanceBadRequest extends Schema.Class<InstanceBadRequest>("InstanceBadRequest")(errorBody) {}
export class InstanceForbidden extends Schema.Class<InstanceForbidden>("InstanceForbidden")(errorBody) {}
export class InstanceNotFound extends Schema.Class<InstanceNotFound>("InstanceNotFound")(errorBody) {}
export class InstanceConflict extends Schema.Class<InstanceConflict>("InstanceConflict")(errorBody) {}
export class InstanceUpstreamFailed extends Schema.Class<InstanceUpstreamFailed>("InstanceUpstreamFailed")(errorBody) {}
export class InstanceUnavailable extends Schema.Class<InstanceUnavailable>("InstanceUnavailable")(errorBody) {}
/** 409 at the limit's maximum: `{error, limit, max}`. */
export class TopUpAtMaximum extends Schema.Class<TopUpAtMaximum>("TopUpAtMaximum")({ error: Schema.String, limit: Schema.Number, max: Schema.Number }) {}

/** An instance's route: its body, and the replaced system's answers when the credentials are missing or wrong. */
const instanceRoute = <const Name extends string>(name: Name, path: HttpApiEndpoint.PathSegment) =>
  HttpApiEndpoint.post(name, path)
    .setPayload(InstanceCall)
    .addError(InstanceBadRequest, { status: 400 })
    .addError(InstanceForbidden, { status: 403 })
    .addError(InstanceNotFound, { status: 404 })
    .addError(InstanceUnavailable, { status: 503 })

export class InstanceGroup extends HttpApiGroup.make("instance")
  .add(
    instanceRoute("selfDestruct", "/api/pool/self-destruct")
      .addSuccess(Schema.Union(Schema.Struct({ ok: Schema.Literal(true) }), Schema.Struct({ instanceId: Schema.String, status: Schema.Literal("deleting") })))
      .addError(Unauthorized)
      .addError(Unavailable)
      .annotate(
        OpenApi.Description,
        "An instance asks to be removed: `{instanceId, gatewayToken}` → `{ok: true}`, answered first; or, as before, `Authorization: Bearer <OPENCLAW_GATEWAY_TOKEN>` → `{instanceId, status: \"deleting\"}`. Its row goes to `deleting`, then its key, inbox and service go."
      )
  )
  .add(
    instanceRoute("selfInfo", "/api/pool/self-info")
      .addSuccess(Schema.Struct({
        ok: Schema.Literal(true),
        instanceId: Schema.String,
        runtimeVersion: Schema.NullOr(Schema.String),
        runtimeImage: Schema.NullOr(Schema.String),
        latestImage: Schema.NullOr(Schema.String)
      }))
      .annotate(OpenApi.Description, "The image the instance runs and its pool's current one.")
  )
  .add(
    instanceRoute("selfUpgrade", "/api/pool/self-upgrade")
      .addSuccess(Schema.Struct({
        ok: Schema.Literal(true),
        instanceId: Schema.String,
        image: Schema.String,
        deployedImage: Schema.String.annotations({ description: "What was deployed: the image pinned to its digest, or the tag when the registry could not say" }),
        digest: Schema.NullOr(Schema.String),
        unresolved: Schema.NullOr(Schema.String).annotations({ description: "Why the tag was deployed as it is (null when pinned)" })
      }))
      .addError(InstanceConflict, { status: 409 })
      .addError(InstanceUpstreamFailed, { status: 502 })
      .annotate(OpenApi.Description, "Redeploys the instance onto its pool's current image, resolved to a digest so a moved tag is really pulled.")
  )
  .add(
    instanceRoute("selfReset", "/api/pool/self-reset")
      .addSuccess(Schema.Struct({ ok: Schema.Literal(true), instanceId: Schema.String }))
      .addError(InstanceConflict, { status: 409 })
      .addError(InstanceUpstreamFailed, { status: 502 })
      .annotate(OpenApi.Description, "A fresh deployment of the instance's image: a new container.")
  )
  .add(
    instanceRoute("creditsCheck", "/api/pool/credits-check")
      .addSuccess(Schema.Struct({ limit: Schema.NullOr(Schema.Number), usage: Schema.Number, remaining: Schema.NullOr(Schema.Number), limitReset: Schema.NullOr(Schema.String) }))
      .addError(InstanceUpstreamFailed, { status: 502 })
      .annotate(OpenApi.Description, "The spend of the instance's own OpenRouter key, read from OpenRouter.")
  )
  .add(
    instanceRoute("creditsTopup", "/api/pool/credits-topup")
      .addSuccess(Schema.Struct({ ok: Schema.Literal(true), previousLimit: Schema.Number, newLimit: Schema.Number }))
      .addError(TopUpAtMaximum, { status: 409 })
      .addError(InstanceUpstreamFailed, { status: 502 })
      .annotate(
        OpenApi.Description,
        "Raises the key's limit by OPENROUTER_TOPUP_INCREMENT (20) up to OPENROUTER_TOPUP_MAX (100); 409 `{error, limit, max}` at the maximum. One top-up of a key at a time, on every replica: N at once raise it by exactly min(N × increment, max − limit)."
      )
  )
  .add(
    instanceRoute("pendingAcceptanceComplete", "/api/pool/pending-acceptance/complete")
      .addSuccess(Schema.Struct({ ok: Schema.Boolean, instanceId: Schema.String, conversationId: Schema.String }))
      .annotate(OpenApi.Description, "The join the instance awaited was accepted: `pending_acceptance` → `claimed`, with `conversationId`. `ok: false` when it was not pending.")
  )
  .add(
    instanceRoute("pendingAcceptanceFail", "/api/pool/pending-acceptance/fail")
      .addSuccess(Schema.Struct({ ok: Schema.Boolean, instanceId: Schema.String }))
      .annotate(OpenApi.Description, "The join the instance awaited was refused: `pending_acceptance` → `tainted` (dismissed like a crashed one). `ok: false` when it was not pending.")
  )
  .annotate(
    OpenApi.Description,
    "For instances: `{instanceId, gatewayToken}` in the JSON body (400 `{error}` when either is missing, 403 `{error}` when they match no instance); compared in constant time."
  )
{}

/** The replaced system's `/api/pool/info`: where this server runs. */
const Info = Schema.Struct({ environment: Schema.String, branch: Schema.String, railwayServiceId: Schema.String })

export class AboutGroup extends HttpApiGroup.make("about")
  .add(
    HttpApiEndpoint.get("info", "/api/pool/info").addSuccess(Info)
      .annotate(OpenApi.Description, "The deployment: POOL_ENVIRONMENT (or RAILWAY_ENVIRONMENT_NAME), the branch (RAILWAY_SOURCE_BRANCH or RAILWAY_GIT_BRANCH) and RAILWAY_SERVICE_ID.")
  )
  .add(
    HttpApiEndpoint.get("version", "/version").addSuccess(Schema.Struct({ version: Schema.String, environment: Schema.String }))
      .annotate(OpenApi.Description, "The server's version and environment.")
  )
  .annotate(OpenApi.Description, "Open to all: what runs where.")
{}

/** An instance as `/api/pool/agents` lists it: as the status shows it, with the instructions it was claimed with. */
const Agent = Schema.Struct({ ...PublicInstance.fields, instructions: Schema.NullOr(Schema.String) })

/** The seed's settings: `{"target_idle": "3"}`. */
const Settings = Schema.Record({ key: Schema.String, value: Schema.String })

/** A refused settings change: the settings as they stay, and why (the replaced system's 400 body). */
export const SettingsRefused = Schema.Struct(
  { errors: Schema.Array(Schema.String) },
  Schema.Record({ key: Schema.String, value: Schema.Union(Schema.String, Schema.Array(Schema.String)) })
).annotations(HttpApiSchema.annotations({ status: 400 }))

const PoolAnswer = Schema.Struct({
  name: Schema.String,
  default: Schema.Boolean,
  minIdle: Schema.Int,
  maxTotal: Schema.Int,
  maxSurge: Schema.Int,
  image: Schema.String,
  templateHash: Schema.String
})

/** A long operator action answered as Server-Sent Events (its query in `params`). */
const progressEndpoint = <const Name extends string, A>(
  name: Name,
  path: HttpApiEndpoint.PathSegment,
  params: Schema.Schema<A, { readonly [key: string]: string | undefined }>,
  description: string
) =>
  HttpApiEndpoint.get(name, path)
    .setUrlParams(params)
    .addSuccess(Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/event-stream" })))
    .addError(BadRequest)
    .annotate(OpenApi.Description, description)

/** A query parameter holding a whole number from `min` to `max`. */
const wholeParam = (name: string, min: number, max: number) =>
  Schema.optional(said(Schema.NumberFromString.pipe(Schema.int(), Schema.between(min, max)), `${name} must be a whole number from ${min} to ${max}`))

export class OperateGroup extends HttpApiGroup.make("operate")
  .add(
    HttpApiEndpoint.get("scope", "/api/pool/scope").addSuccess(Schema.Struct({ scope: Schema.Literal("operator", "claim") }))
      .annotate(OpenApi.Description, "What the key in use may do: `operator` (POOL_API_KEY: everything) or `claim` (a POOL_CLAIM_KEYS key: claims and counts). Open to both.")
  )
  .add(
    HttpApiEndpoint.get("settings", "/api/pool/settings").addSuccess(Settings).addError(NotImplemented)
      .annotate(OpenApi.Description, "The replaced system's settings: `{\"target_idle\": \"3\"}`, the default pool's minimum idle now.")
  )
  .add(
    HttpApiEndpoint.put("putSettings", "/api/pool/settings").setPayload(Schema.Unknown).addSuccess(Settings)
      .addError(SettingsRefused).addError(NotImplemented).addError(Unavailable)
      .annotate(
        OpenApi.Description,
        "`{\"target_idle\": \"5\"}` (a string, \"0\" to \"50\") sets the default pool's minimum idle live, kept in Postgres (`pool_settings`) and applied by every replica. Unknown keys or bad values: 400 `{...settings, errors}`, nothing changed."
      )
  )
  .add(
    HttpApiEndpoint.put("putPool", "/api/pool/pools/:name").setPath(Schema.Struct({ name: Schema.String })).setPayload(Schema.Unknown)
      .addSuccess(PoolAnswer).addError(BadRequest).addError(NotFound).addError(NotImplemented).addError(Unavailable)
      .annotate(
        OpenApi.Description,
        "Changes a pool live: any of `minIdle`, `maxTotal`, `image`, `env` (validated as `POOLS` entries; `null` restores the declared value). A new image or env starts a rollout. Kept in Postgres, applied by every replica."
      )
  )
  .add(
    HttpApiEndpoint.post("recheck", "/api/pool/recheck/:id").setPath(Schema.Struct({ id: Schema.String }))
      .addSuccess(Schema.Struct({ ok: Schema.Literal(true), id: Schema.String, status: Schema.String, changed: Schema.Boolean, reason: Schema.String }))
      .addError(NotFound).addError(Unavailable)
      .annotate(OpenApi.Description, "Probes the instance's health now and reconciles its status (a ready `starting` one becomes `idle`).")
  )
  .add(
    HttpApiEndpoint.get("agents", "/api/pool/agents")
      .addSuccess(Schema.Struct({
        claimed: Schema.Array(Agent),
        pendingAcceptance: Schema.Array(Agent),
        tainted: Schema.Array(Agent),
        crashed: Schema.Array(Agent),
        idle: Schema.Array(Agent),
        starting: Schema.Array(Agent)
      }))
      .addError(Unavailable)
      .annotate(OpenApi.Description, "Instances of every pool by status, oldest first.")
  )
  .add(progressEndpoint("drainStream", "/api/pool/drain/stream", Schema.Struct({ count: wholeParam("count", 1, MAX_COUNT), concurrency: wholeParam("concurrency", 1, 10), pool: Schema.optional(Schema.String) }), "Drains up to `count` (default 20) idle instances, never a protected one, as Server-Sent Events: `{type: \"step\", instanceNum, instanceId, instanceName, step, status, message}` per instance, then `{type: \"complete\", drained, failed, drainedIds, counts}`."))
  .add(progressEndpoint("replenishStream", "/api/pool/replenish/stream", Schema.Struct({ count: wholeParam("count", 1, 20), pool: Schema.optional(Schema.String) }), "Creates `count` (default 1, at most 20) instances as Server-Sent Events: `step` events per instance, `{type: \"instance\", instanceNum, instance}` once its service exists, then `{type: \"complete\", created, failed, counts}`."))
  .add(progressEndpoint("upgradeStream", "/api/pool/upgrade/stream", Schema.Struct({ ids: Schema.optional(Schema.String), image: Schema.optional(Schema.String) }), "Redeploys the claimed instances `ids` (comma-separated) onto their pool's image (or `image`) as Server-Sent Events: `info` per instance, `step` events, then `{type: \"complete\", upgraded, failed, total, counts}`."))
  .middleware(Authorization)
  .annotate(OpenApi.Description, "Operator routes: need `Authorization: Bearer <POOL_API_KEY>` (`/api/pool/scope` takes a claim key too).")
{}

export class PoolApi extends HttpApi.make("warmpool")
  .add(PublicGroup)
  .add(PoolGroup)
  .add(InstanceGroup)
  .add(AboutGroup)
  .add(OperateGroup)
  .annotate(OpenApi.Title, "warmpool: the Convos agent pool manager")
{}

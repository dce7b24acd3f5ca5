import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpRouter from "@effect/platform/HttpRouter"
import { Railway } from "@warmpool/providers-railway"
import { type Action, type Instance, InstanceStore, type PassSummary, ServiceUpgrader, upgradeInstance } from "@warmpool/reconciler"
import { Effect, Layer, Option, Redacted, Schema } from "effect"
import { Authorization, BadGateway, BadRequest, ClaimBody, Conflict, databaseUnavailable, Degraded, Forbidden, NotFound, NotImplemented, PoolApi, Unauthorized } from "../api/api.js"
import { Coordination } from "../coordination/coordination.js"
import { DatabaseHealth } from "../database-health.js"
import { claimEventStream, claimOfQuery, idempotentClaim, replacedClaimEventStream, runClaim } from "./claims.js"
import { digest, matchesDigest } from "./secrets.js"
import { controllerOf, pickPool, poolCounts, poolsInContext, poolStatus, selectPools } from "./pools.js"
import { sizingOf } from "./sizing.js"

/** The claim's metadata, kept as JSON in its row. */
const metadataOf = (row: Instance): Record<string, string> | null => {
  const kept = row.attributes.metadata
  if (kept === undefined) return null
  try {
    return JSON.parse(kept) as Record<string, string>
  } catch {
    return null
  }
}

const decodeClaimBody = (input: unknown) =>
  Schema.decodeUnknown(ClaimBody)(input).pipe(Effect.mapError((error) => new BadRequest({ message: error.message })))

/** The row as the API shows it: no gateway token, no key hash, no inbox id. */
export const toPublic = (row: Instance) => ({
  id: row.id,
  pool: row.pool,
  name: row.name,
  status: row.status,
  serviceId: row.serviceId,
  url: row.url,
  deployStatus: row.deployStatus,
  agentName: row.attributes.agentName ?? null,
  conversationId: row.attributes.conversationId ?? null,
  inviteUrl: row.attributes.inviteUrl ?? null,
  createdAt: row.createdAt.toISOString(),
  claimedAt: row.claimedAt?.toISOString() ?? null,
  statusChangedAt: row.statusChangedAt.toISOString(),
  sourceBranch: row.attributes.sourceBranch ?? null,
  profileImage: row.attributes.profileImage ?? null,
  metadata: metadataOf(row),
  source: row.attributes.source ?? null,
  runtimeImage: row.runtimeImage,
  runtimeVersion: row.attributes.runtimeVersion ?? null,
  templateHash: row.templateHash,
  lastError: row.lastError
})

/** Why an operator action on a protected instance is refused. */
export const protectedMessage = (id: string, what: string) => `instance ${id} is protected (PROTECTED_INSTANCES): it cannot be ${what}`

const toSummary = (summary: PassSummary) => ({ ...summary, startedAt: summary.startedAt.toISOString() })

const describeAction = (action: Action) => {
  switch (action._tag) {
    case "Create":
      return { kind: action._tag, detail: action.reason }
    case "Adopt":
      return { kind: action._tag, detail: `${action.service.name} (${action.service.serviceId})` }
    case "RemoveService":
      return { kind: action._tag, detail: `${action.service.name} (${action.service.serviceId}): ${action.reason}` }
    case "Delete":
      return { kind: action._tag, id: action.id, detail: `${action.reason}, from ${action.from}` }
    case "MarkCrashed":
      return { kind: action._tag, id: action.id, detail: action.reason }
    case "MarkIdle":
    case "Refresh":
      return { kind: action._tag, id: action.id, detail: action.deployStatus ?? "" }
    case "RecordService":
      return { kind: action._tag, id: action.id, detail: action.service.serviceId }
    case "FinishCreate":
      return { kind: action._tag, id: action.id, detail: "abandoned create, finished" }
  }
}

/** Routes a POOL_CLAIM_KEYS key may call (by method and route pattern); counts need no key at all. */
const claimRoutes = new Set(["POST /api/pool/claim", "POST /api/pool/claim/stream", "GET /api/pool/claim/stream", "GET /api/pool/scope"])

export const AuthorizationLive = (apiKey: Redacted.Redacted<string>, claimKeys: ReadonlyArray<Redacted.Redacted<string>> = []) => {
  // Digested once, not per request: every authenticated request (every claim) checks it.
  const expected = digest(Redacted.value(apiKey))
  const claimDigests = claimKeys.map((key) => digest(Redacted.value(key)))
  return Layer.succeed(Authorization, {
    bearer: (token) =>
      Effect.gen(function*() {
        const given = Redacted.value(token)
        if (matchesDigest(given, expected)) return "operator" as const
        // Every claim key is compared, none skipped: the timing says nothing of which one matched.
        const claimKey = claimDigests.reduce((found, key) => matchesDigest(given, key) || found, false)
        if (!claimKey) return yield* new Unauthorized({ message: "missing or wrong bearer token (POOL_API_KEY)" })
        const { route } = yield* HttpRouter.RouteContext
        if (!claimRoutes.has(`${route.method} ${route.path}`)) {
          return yield* new Forbidden({ message: "this key (POOL_CLAIM_KEYS) may only claim and read counts; this route needs POOL_API_KEY" })
        }
        return "claim" as const
      })
  })
}

const healthy = { ok: true as const, status: "ok" as const }

export const PublicLive = HttpApiBuilder.group(PoolApi, "public", (handlers) =>
  Effect.gen(function*() {
    const pools = yield* poolsInContext
    const store = yield* InstanceStore
    return handlers
      .handle("healthz", () =>
        Effect.flatMap(Effect.serviceOption(DatabaseHealth), (health) =>
          Option.isNone(health) ? Effect.succeed(healthy) : Effect.flatMap(health.value.current, (state) =>
            state.reachable
              ? Effect.succeed(healthy)
              : new Degraded({
                ok: false,
                status: "degraded",
                database: "unreachable",
                since: state.since.toISOString(),
                message: `the database cannot be reached${state.error === undefined ? "" : ` (${state.error})`}; claims are answered 503 until it is back`
              }))))
      .handle("counts", ({ urlParams }) =>
        Effect.flatMap(selectPools(pools, urlParams.pool), (selected) => poolCounts(store, selected).pipe(Effect.mapError(databaseUnavailable))))
  }))

export const PoolLive = (environment: "staging" | "dev" | "production") =>
  HttpApiBuilder.group(PoolApi, "pool", (handlers) =>
    Effect.gen(function*() {
      const pools = yield* poolsInContext
      const store = yield* InstanceStore
      const upgrader = yield* Effect.serviceOption(ServiceUpgrader)
      const railway = yield* Effect.serviceOption(Railway)
      const coordination = yield* Coordination
      return handlers
        .handle("status", ({ urlParams }) =>
          Effect.flatMap(selectPools(pools, urlParams.pool), (selected) =>
            poolStatus(store, pools, selected, toPublic).pipe(Effect.mapError(databaseUnavailable))))
        .handle("claim", ({ headers, payload }) =>
          Effect.flatMap(pickPool(pools, payload.runtime ?? undefined, payload.pool ?? undefined), (controller) =>
            idempotentClaim(coordination, headers["idempotency-key"], payload, runClaim(controller, coordination, environment, payload))))
        .handle("claimStream", ({ payload }) =>
          Effect.flatMap(pickPool(pools, payload.runtime ?? undefined, payload.pool ?? undefined), (controller) =>
            claimEventStream(controller, coordination, environment, payload)))
        .handle("claimStreamGet", ({ urlParams }) =>
          Effect.gen(function*() {
            const payload = yield* claimOfQuery(urlParams, decodeClaimBody)
            const controller = yield* pickPool(pools, payload.runtime ?? undefined, payload.pool ?? undefined)
            return yield* replacedClaimEventStream(controller, coordination, environment, payload)
          }))
        .handle("replenish", ({ payload, urlParams }) =>
          pickPool(pools, urlParams.pool, payload?.pool ?? undefined).pipe(
            Effect.flatMap((controller) => controller.replenish(payload?.count ?? 0)),
            Effect.map(toSummary)
          ))
        .handle("drain", ({ payload, urlParams }) =>
          pickPool(pools, urlParams.pool, payload.pool).pipe(
            Effect.flatMap((controller) => controller.drain(payload.count).pipe(Effect.mapError(databaseUnavailable))),
            Effect.map((drained) => ({ drained }))
          ))
        .handle("reconcile", ({ urlParams }) =>
          selectPools(pools, urlParams.pool).pipe(
            Effect.flatMap((selected) => Effect.forEach(selected, (c) => c.runPass, { concurrency: "unbounded" })),
            Effect.map((summaries) => toSummary(summaries[0]!))
          ))
        .handle("plan", ({ urlParams }) =>
          selectPools(pools, urlParams.pool).pipe(
            Effect.flatMap((selected) =>
              Effect.forEach(selected, (c) =>
                c.preview.pipe(Effect.map((actions) => actions.map((action) => ({ pool: c.spec.name, ...describeAction(action) }))))).pipe(
                  Effect.mapError(databaseUnavailable),
                  // After the previews: a dry run refreshes the sizing decision it shows.
                  Effect.zip(sizingOf(selected))
                )),
            Effect.map(([actions, sizing]) => ({ actions: actions.flat(), ...sizing }))
          ))
        .handle("upgrade", ({ path }) =>
          Effect.gen(function*() {
            if (Option.isNone(upgrader)) return yield* new NotImplemented({ message: "this compute provider cannot redeploy services" })
            const controller = yield* controllerOf(pools, store, path.id).pipe(Effect.catchTag("StoreError", databaseUnavailable))
            if (controller.protectedIds.has(path.id)) return yield* new Conflict({ message: protectedMessage(path.id, "upgraded") })
            const upgraded = yield* upgradeInstance(controller.spec, path.id).pipe(
              Effect.provideService(ServiceUpgrader, upgrader.value),
              Effect.mapError((e) => {
                switch (e._tag) {
                  case "NotFoundError":
                    return new NotFound({ message: `no instance ${path.id}` })
                  case "StaleStatusError":
                    return new Conflict({ message: e.message })
                  case "StoreError":
                    return databaseUnavailable(e)
                  default:
                    return new BadGateway({ message: `the platform did not redeploy ${path.id}: ${e.message}` })
                }
              })
            )
            return toPublic(upgraded)
          }))
        .handle("budget", () =>
          Option.match(railway, {
            onNone: () => Effect.succeed({ provider: null, requestsLastHour: null, hourlyLimit: null, remaining: null, rateLimited: null, byOperation: {} }),
            onSome: (r) => Effect.map(r.usage, ({ lastHeaders: _, ...usage }) => ({ provider: "railway" as const, ...usage }))
          }))
        .handle("kill", ({ path }) =>
          Effect.flatMap(controllerOf(pools, store, path.id), (controller) => controller.kill(path.id)).pipe(
            Effect.map(toPublic),
            Effect.catchTags({
              NotFoundError: () => new NotFound({ message: `no instance ${path.id}` }),
              StaleStatusError: () => new Conflict({ message: `instance ${path.id} is already being deleted` }),
              ProtectedInstanceError: (e) => new Conflict({ message: e.message }),
              StoreError: databaseUnavailable
            })
          ))
        .handle("dismiss", ({ path }) =>
          Effect.flatMap(controllerOf(pools, store, path.id), (controller) => controller.dismiss(path.id)).pipe(
            Effect.map(toPublic),
            Effect.catchTags({
              NotFoundError: () => new NotFound({ message: `no instance ${path.id}` }),
              StaleStatusError: () => new Conflict({ message: `instance ${path.id} is not crashed` }),
              ProtectedInstanceError: (e) => new Conflict({ message: e.message }),
              StoreError: databaseUnavailable
            })
          ))
    }))

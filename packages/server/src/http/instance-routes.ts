/**
 * What an instance asks for itself, as the replaced runtime asks it: `{instanceId, gatewayToken}` in the JSON
 * body (400 when either is missing, 403 when they match no instance of a declared pool). `self-destruct` also
 * keeps its earlier form, the instance's own gateway token as Bearer. No token is ever logged; comparisons are of
 * fixed-length digests, and take the same time whether the instance exists or not.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { OPENROUTER_KEY_HANDLE, OpenRouterKeys } from "@warmpool/providers-openrouter"
import { currentTemplate, type Instance, InstanceStore, type Pools, ServiceUpgrader } from "@warmpool/reconciler"
import { Config, Effect, Option, Redacted } from "effect"
import { randomBytes, timingSafeEqual } from "node:crypto"
import {
  InstanceBadRequest,
  InstanceConflict,
  InstanceForbidden,
  InstanceNotFound,
  InstanceUnavailable,
  InstanceUpstreamFailed,
  PoolApi,
  TopUpAtMaximum,
  Unauthorized
} from "../api/api.js"
import { Coordination } from "../coordination/coordination.js"
import { GATEWAY_TOKEN_HANDLE } from "../convos/secrets.js"
import { ImageDigests } from "../registry/image-digests.js"
import { poolsInContext } from "./pools.js"
import { digest, matchesDigest } from "./secrets.js"

type InstanceError = InstanceBadRequest | InstanceForbidden | InstanceNotFound | InstanceConflict | TopUpAtMaximum | InstanceUpstreamFailed | InstanceUnavailable

/** Each error class of these routes, and its status. */
const statusOf = new Map<unknown, number>([
  [InstanceBadRequest, 400],
  [InstanceForbidden, 403],
  [InstanceNotFound, 404],
  [InstanceConflict, 409],
  [TopUpAtMaximum, 409],
  [InstanceUpstreamFailed, 502],
  [InstanceUnavailable, 503]
])

/**
 * The replaced system's error answer, written here: these bodies all look alike (`{error}`), so HttpApi could not
 * tell their statuses apart by shape. The API description still lists each.
 */
const answered = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A | HttpServerResponse.HttpServerResponse, Exclude<E, InstanceError>, R> =>
  Effect.catchAll(effect, (error) => {
    const status = typeof error === "object" && error !== null ? statusOf.get(error.constructor) : undefined
    return status === undefined
      ? Effect.fail(error as Exclude<E, InstanceError>)
      : Effect.succeed(HttpServerResponse.unsafeJson({ ...error }, { status }))
  })

/** The body of an instance's call, as it came (any JSON). */
type InstanceCall = { readonly instanceId?: unknown; readonly gatewayToken?: unknown; readonly conversationId?: unknown } | null

const forbidden = new InstanceForbidden({ error: "Invalid instance ID or token" })
const unavailable = (error: { readonly message: string }) => new InstanceUnavailable({ error: `database unavailable: ${error.message}` })
const bearerRefused = new Unauthorized({ message: "missing or wrong bearer token (the instance's OPENCLAW_GATEWAY_TOKEN)" })

const nonEmpty = (value: unknown): value is string => typeof value === "string" && value !== ""

/** Compared against when the instance is unknown or has no token, so that the comparison takes its usual time. */
const absentToken = digest(randomBytes(32).toString("hex"))

/** The instance `{instanceId, gatewayToken}` name, if the token is its own and its pool is declared here. */
const authenticate = (store: InstanceStore["Type"], pools: Pools["Type"], call: InstanceCall, required = "instanceId and gatewayToken") =>
  Effect.gen(function*() {
    if (!nonEmpty(call?.instanceId) || !nonEmpty(call.gatewayToken)) return yield* Effect.fail(new InstanceBadRequest({ error: `${required} are required` }))
    const found = yield* store.get(call.instanceId).pipe(Effect.mapError(unavailable))
    const row = Option.getOrUndefined(found)
    const token = row?.handles[GATEWAY_TOKEN_HANDLE]
    const matches = matchesDigest(call.gatewayToken, token === undefined ? absentToken : digest(token))
    if (!matches || row === undefined || token === undefined || !pools.all.some((c) => c.spec.name === row.pool)) return yield* Effect.fail(forbidden)
    return row
  })

/** The row whose gateway token is `given`: every row is compared, none skipped, so timing tells nothing. */
const owner = (rows: ReadonlyArray<Instance>, given: Buffer): Instance | undefined => {
  let found: Instance | undefined
  for (const row of rows) {
    const token = row.handles[GATEWAY_TOKEN_HANDLE]
    if (token === undefined) continue
    if (matchesDigest(token, given) && found === undefined) found = row
  }
  return found
}

/** The earlier form: `Authorization: Bearer <OPENCLAW_GATEWAY_TOKEN>`, never the pool's own key. */
const bearerOwner = (store: InstanceStore["Type"], pools: Pools["Type"], poolKey: Buffer, header: string) =>
  Effect.gen(function*() {
    const token = /^bearer\s+(.+)$/i.exec(header)?.[1]?.trim() ?? ""
    const given = digest(token)
    if (token === "" || timingSafeEqual(given, poolKey)) return yield* Effect.fail(bearerRefused)
    const rows = yield* Effect.forEach(pools.all, (c) => store.list(c.spec.name)).pipe(
      Effect.map((each) => each.flat()),
      Effect.mapError(unavailable)
    )
    const row = owner(rows, given)
    return row === undefined ? yield* Effect.fail(bearerRefused) : row
  })

/** OPENROUTER_TOPUP_INCREMENT and OPENROUTER_TOPUP_MAX (USD), as the replaced system names them. */
export const TopUpConfig = Config.all({
  increment: Config.number("OPENROUTER_TOPUP_INCREMENT").pipe(
    Config.validate({ message: "OPENROUTER_TOPUP_INCREMENT must be a number of USD > 0", validation: (n) => n > 0 }),
    Config.withDefault(20)
  ),
  max: Config.number("OPENROUTER_TOPUP_MAX").pipe(
    Config.validate({ message: "OPENROUTER_TOPUP_MAX must be a number of USD ≥ 0", validation: (n) => n >= 0 }),
    Config.withDefault(100)
  )
})

export const InstanceLive = (apiKey: Redacted.Redacted<string>) =>
  HttpApiBuilder.group(PoolApi, "instance", (handlers) =>
    Effect.gen(function*() {
      const pools = yield* poolsInContext
      const store = yield* InstanceStore
      const coordination = yield* Coordination
      const upgrader = yield* Effect.serviceOption(ServiceUpgrader)
      const keys = yield* Effect.serviceOption(OpenRouterKeys)
      const digests = yield* ImageDigests
      const topUp = yield* TopUpConfig
      const poolKey = digest(Redacted.value(apiKey))

      const controllerOf = (row: Instance) =>
        // authenticate found the row among the declared pools: its pool is one of them.
        Effect.orDie(pools.pick(row.pool))

      /** Marks the row `deleting` (the next pass removes service, key and inbox); asked twice, the same. */
      const remove = (row: Instance) =>
        controllerOf(row).pipe(
          Effect.flatMap((controller) => controller.kill(row.id)),
          Effect.catchTags({ StaleStatusError: () => Effect.void, NotFoundError: () => Effect.void }),
          Effect.zipRight(Effect.logInfo(`instance ${row.id} asked to be removed (self-destruct)`))
        )

      const selfDestruct = (call: InstanceCall, request: HttpServerRequest.HttpServerRequest) =>
        Effect.gen(function*() {
          const header = request.headers.authorization
          const bodyForm = call !== null && (call.instanceId !== undefined || call.gatewayToken !== undefined)
          if (!bodyForm && header !== undefined) {
            const row = yield* bearerOwner(store, pools, poolKey, header)
            yield* remove(row).pipe(Effect.mapError(unavailable))
            return { instanceId: row.id, status: "deleting" as const }
          }
          // No credentials at all and no body: the earlier form's refusal.
          if (!bodyForm && call === null) return yield* Effect.fail(bearerRefused)
          const row = yield* authenticate(store, pools, call)
          // Answered first; the removal follows (the instance does not wait for it).
          yield* Effect.forkDaemon(remove(row).pipe(Effect.catchAll((e) => Effect.logWarning(`self-destruct of ${row.id} failed: ${e.message}`))))
          return { ok: true as const }
        })

      /** The row's service, for the calls that redeploy it. */
      const serviceOf = (row: Instance) =>
        row.serviceId === null || row.status === "deleting" || row.status === "creating"
          ? Effect.fail(new InstanceConflict({ error: `Instance ${row.id} is ${row.status}${row.serviceId === null ? " and has no service yet" : ""}` }))
          : Effect.succeed(row.serviceId)

      const upgraderOrFail = Option.match(upgrader, {
        onNone: () => Effect.fail(new InstanceUnavailable({ error: "this compute provider cannot redeploy services" })),
        onSome: Effect.succeed
      })

      const platformFailed = (what: string, id: string) => (error: { readonly message: string }) =>
        new InstanceUpstreamFailed({ error: `the platform did not ${what} ${id}: ${error.message}` })

      const keyOf = (row: Instance) =>
        Effect.gen(function*() {
          const hash = row.handles[OPENROUTER_KEY_HANDLE]
          if (hash === undefined || hash === "") return yield* Effect.fail(new InstanceNotFound({ error: "No credits service provisioned for this instance" }))
          if (Option.isNone(keys)) return yield* Effect.fail(new InstanceUnavailable({ error: "Credits service not configured on server" }))
          return { hash, keys: keys.value }
        })

      const providerFailed = (error: { readonly message: string }) => new InstanceUpstreamFailed({ error: `Failed to reach the credits provider: ${error.message}` })

      return handlers
        .handle("selfDestruct", ({ payload, request }) => answered(selfDestruct(payload, request)))
        .handle("selfInfo", ({ payload }) => answered(Effect.gen(function*() {
            const row = yield* authenticate(store, pools, payload)
            const controller = yield* controllerOf(row)
            return {
              ok: true as const,
              instanceId: row.id,
              runtimeVersion: row.attributes.runtimeVersion ?? null,
              runtimeImage: row.runtimeImage,
              latestImage: controller.spec.template.image
            }
          })))
        .handle("selfUpgrade", ({ payload }) => answered(Effect.gen(function*() {
            const row = yield* authenticate(store, pools, payload)
            const serviceId = yield* serviceOf(row)
            const redeployer = yield* upgraderOrFail
            const { spec } = yield* controllerOf(row)
            const current = currentTemplate(spec)
            const resolved = yield* digests.resolve(spec.template.image)
            yield* redeployer.redeploy(serviceId, { image: resolved.image, env: spec.template.env }).pipe(Effect.mapError(platformFailed("redeploy", row.id)))
            // The service runs the new image whatever else happened meanwhile; a row that moved on keeps its own status.
            yield* store.transition({ id: row.id, from: [row.status], to: row.status, patch: { runtimeImage: current.image, templateHash: current.hash } }).pipe(
              Effect.catchTag("StaleStatusError", () => Effect.void),
              Effect.mapError(unavailable)
            )
            yield* Effect.logInfo(`instance ${row.id} asked for an upgrade: redeployed onto ${resolved.image}`)
            return { ok: true as const, instanceId: row.id, image: spec.template.image, deployedImage: resolved.image, digest: resolved.digest, unresolved: resolved.unresolved }
          })))
        .handle("selfReset", ({ payload }) => answered(Effect.gen(function*() {
            const row = yield* authenticate(store, pools, payload)
            const serviceId = yield* serviceOf(row)
            const redeployer = yield* upgraderOrFail
            yield* redeployer.restart(serviceId).pipe(Effect.mapError(platformFailed("restart", row.id)))
            yield* Effect.logInfo(`instance ${row.id} asked for a reset: a fresh deployment`)
            return { ok: true as const, instanceId: row.id }
          })))
        .handle("creditsCheck", ({ payload }) => answered(Effect.gen(function*() {
            const row = yield* authenticate(store, pools, payload)
            const { hash, keys } = yield* keyOf(row)
            const spend = yield* keys.spend(hash).pipe(Effect.mapError(providerFailed))
            return {
              limit: spend.limit,
              usage: spend.usage,
              remaining: spend.limit === null ? null : Math.max(0, spend.limit - spend.usage),
              limitReset: spend.limitReset
            }
          })))
        .handle("creditsTopup", ({ payload }) => answered(Effect.gen(function*() {
            const row = yield* authenticate(store, pools, payload)
            const { hash, keys } = yield* keyOf(row)
            // One top-up of a key at a time on every replica; the limit is read from OpenRouter under the lock,
            // so N top-ups at once add exactly min(N × increment, max − limit).
            return yield* coordination.exclusive(`credits-topup:${row.id}`)(
              Effect.gen(function*() {
                const spend = yield* keys.spend(hash).pipe(Effect.mapError(providerFailed))
                // A key without a limit has nothing to raise.
                const previousLimit = spend.limit ?? topUp.max
                if (previousLimit >= topUp.max) {
                  return yield* Effect.fail(new TopUpAtMaximum({ error: "Credit limit already at maximum", limit: previousLimit, max: topUp.max }))
                }
                const newLimit = Math.min(previousLimit + topUp.increment, topUp.max)
                yield* keys.setLimit(hash, newLimit).pipe(Effect.mapError(providerFailed))
                yield* Effect.logInfo(`instance ${row.id}: credits topped up from ${previousLimit} to ${newLimit} USD`)
                return { ok: true as const, previousLimit, newLimit }
              })
            ).pipe(Effect.catchTag("StoreError", (e) => Effect.fail(unavailable(e))))
          })))
        .handle("pendingAcceptanceComplete", ({ payload }) => answered(Effect.gen(function*() {
            const required = "instanceId, gatewayToken, and conversationId"
            if (!nonEmpty(payload?.conversationId)) return yield* Effect.fail(new InstanceBadRequest({ error: `${required} are required` }))
            const conversationId = payload.conversationId
            const row = yield* authenticate(store, pools, payload, required)
            const ok = yield* store.transition({ id: row.id, from: ["pending_acceptance"], to: "claimed", patch: { attributes: { conversationId } } }).pipe(
              Effect.as(true),
              Effect.catchTag("StaleStatusError", () => Effect.succeed(false)),
              Effect.mapError(unavailable)
            )
            return { ok, instanceId: row.id, conversationId }
          })))
        .handle("pendingAcceptanceFail", ({ payload }) => answered(Effect.gen(function*() {
            const row = yield* authenticate(store, pools, payload)
            const ok = yield* store.transition({ id: row.id, from: ["pending_acceptance"], to: "tainted", patch: { lastError: "tainted: the join was not accepted" } }).pipe(
              Effect.as(true),
              Effect.catchTag("StaleStatusError", () => Effect.succeed(false)),
              Effect.mapError(unavailable)
            )
            return { ok, instanceId: row.id }
          })))
    }))

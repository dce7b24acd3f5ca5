/**
 * `POST /api/pool/self-destruct`: an instance asks to be removed, authenticated by its own gateway token
 * (OPENCLAW_GATEWAY_TOKEN). The row goes to `deleting`; the next pass releases its key and inbox and deletes
 * its service, as for any other delete. No token is ever logged; comparisons take the same time whatever matches.
 */
import { HttpApiBuilder } from "@effect/platform"
import { type Instance, InstanceStore } from "@warmpool/reconciler"
import { Effect, Layer, Redacted } from "effect"
import { timingSafeEqual } from "node:crypto"
import { GATEWAY_TOKEN_HANDLE } from "../convos/secrets.js"
import { CurrentInstance, databaseUnavailable, GatewayAuthorization, PoolApi, Unauthorized } from "../api/api.js"
import { poolsInContext } from "./pools.js"
import { digest, matchesDigest } from "./secrets.js"

const refused = new Unauthorized({ message: "missing or wrong bearer token (the instance's OPENCLAW_GATEWAY_TOKEN)" })

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

export const GatewayAuthorizationLive = (apiKey: Redacted.Redacted<string>) =>
  Layer.effect(
    GatewayAuthorization,
    Effect.gen(function*() {
      const pools = yield* poolsInContext
      const store = yield* InstanceStore
      const poolKey = digest(Redacted.value(apiKey))
      return {
        bearer: (token) =>
          Effect.gen(function*() {
            const given = digest(Redacted.value(token))
            // The pool's own key is not an instance's: it never authorizes an instance's request.
            if (Redacted.value(token) === "" || timingSafeEqual(given, poolKey)) return yield* refused
            const rows = yield* Effect.forEach(pools.all, (c) => store.list(c.spec.name)).pipe(
              Effect.map((each) => each.flat()),
              Effect.mapError(databaseUnavailable)
            )
            const row = owner(rows, given)
            return row === undefined ? yield* refused : row
          })
      }
    })
  )

export const InstanceLive = HttpApiBuilder.group(PoolApi, "instance", (handlers) =>
  Effect.gen(function*() {
    const pools = yield* poolsInContext
    return handlers.handle("selfDestruct", () =>
      Effect.gen(function*() {
        const instance = yield* CurrentInstance
        yield* pools.pick(instance.pool).pipe(
          // The instance was found among the declared pools' rows: its pool is one of them.
          Effect.orDie,
          Effect.flatMap((controller) => controller.kill(instance.id)),
          // Asked twice, or already on its way out: the answer is the same.
          Effect.catchTags({ StaleStatusError: () => Effect.void, NotFoundError: () => Effect.void }),
          Effect.mapError(databaseUnavailable)
        )
        yield* Effect.logInfo(`instance ${instance.id} asked to be removed (self-destruct)`)
        return { instanceId: instance.id, status: "deleting" as const }
      }))
  }))

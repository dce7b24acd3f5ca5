/**
 * Incarnations on Postgres: each run holds a session advisory lock on a connection of its own, keyed by its id.
 * Postgres drops the lock the instant the process dies (its connection closes with it), so "who is alive" is
 * exact, with no heartbeat to write and no ttl to wait out: a leader sees a killed replica's claims as
 * abandoned on its next pass.
 */
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Layer, Schedule } from "effect"
import { randomInt } from "node:crypto"
import { StoreError } from "../errors.js"
import { Incarnations } from "../services.js"

/** The advisory locks' first key: "wpin", warmpool incarnations; the second key is the incarnation. */
const NAMESPACE = 0x7770696e

/** An incarnation id is its lock key, in hex: what `intent_by` holds. */
const idOf = (key: number) => key.toString(16).padStart(8, "0")

const storeError = (operation: string) => (error: { readonly message: string }) =>
  new StoreError({ operation, message: error.message, retryable: true })

export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const connection = yield* sql.reserve.pipe(Effect.mapError(storeError("incarnations.reserve")))
  // A random key; another live run holding it (a chance in two billion) makes us draw again.
  const draw = Effect.gen(function*() {
    const candidate = randomInt(1, 2 ** 31 - 1)
    const [row] = yield* connection.execute("SELECT pg_try_advisory_lock($1, $2) AS ok", [NAMESPACE, candidate], undefined).pipe(
      Effect.mapError(storeError("incarnations.lock"))
    )
    if (row?.ok !== true) return yield* new StoreError({ operation: "incarnations.lock", message: `key ${candidate} is taken`, retryable: true })
    return candidate
  })
  const key = yield* Effect.retry(draw, { times: 5 })
  // Unlock before the connection goes back to the pool: a pooled session must not keep us "alive".
  yield* Effect.addFinalizer(() => Effect.ignore(connection.execute("SELECT pg_advisory_unlock($1, $2)", [NAMESPACE, key], undefined)))
  // If the reserved connection breaks, our lock is gone and a leader would take our claims for abandoned: say so.
  yield* Effect.forkScoped(
    connection.execute("SELECT 1", [], undefined).pipe(
      Effect.catchAll((error) => Effect.logWarning(`incarnation ${idOf(key)}: its lock connection failed (${error.message})`)),
      Effect.repeat(Schedule.spaced(Duration.seconds(10)))
    )
  )
  const alive = sql<{ key: string }>`
    SELECT objid::bigint AS key FROM pg_locks
    WHERE locktype = 'advisory' AND classid = ${NAMESPACE}::bigint::oid AND objsubid = 2 AND granted
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`.pipe(
    Effect.map((rows) => new Set(rows.map((r) => idOf(Number(r.key))))),
    Effect.mapError(storeError("incarnations.alive"))
  )
  return Incarnations.of({ self: idOf(key), alive })
})

export const PgIncarnations = {
  /** This run's incarnation, alive for the layer's lifetime (and not a moment after the process dies). */
  layer: Layer.scoped(Incarnations, make)
}

/**
 * Incarnations on Postgres: each run holds a session advisory lock, keyed by its id, on a connection of its own.
 * Postgres drops the lock the instant the process dies (its connection closes with it), so "who is alive" is
 * exact, with no heartbeat row to write and no ttl to wait out: a leader sees a killed replica's claims as
 * abandoned on its next pass. A connection that breaks while the process lives is replaced and the lock taken
 * again within seconds.
 */
import { SqlClient } from "@effect/sql"
import type { Connection } from "@effect/sql/SqlConnection"
import { Deferred, Duration, Effect, Layer, Ref, Schedule } from "effect"
import { randomInt } from "node:crypto"
import { StoreError, Incarnations } from "@warmpool/reconciler"

/** The advisory locks' first key: "wpin", warmpool incarnations; the second key is the incarnation. */
const NAMESPACE = 0x7770696e

/** An incarnation id is its lock key, in hex: what `intent_by` holds. */
const idOf = (key: number) => key.toString(16).padStart(8, "0")

const storeError = (operation: string) => (error: { readonly message: string }) =>
  new StoreError({ operation, message: error.message, retryable: true })

const tryLock = (connection: Connection, key: number) =>
  connection.execute("SELECT pg_try_advisory_lock($1, $2) AS ok", [NAMESPACE, key], undefined).pipe(
    Effect.mapError(storeError("incarnations.lock")),
    Effect.flatMap(([row]) =>
      row?.ok === true ? Effect.succeed(key) : new StoreError({ operation: "incarnations.lock", message: `lock ${idOf(key)} is held by another session`, retryable: true })
    )
  )

export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const key = yield* Ref.make<number | undefined>(undefined)
  const locked = yield* Deferred.make<number, StoreError>()

  /** Reserve a connection and lock our key on it (a random free key the first time); held until it breaks. */
  const session = Effect.gen(function*() {
    const connection = yield* sql.reserve.pipe(Effect.mapError(storeError("incarnations.reserve")))
    const known = yield* Ref.get(key)
    const held = known !== undefined
      ? yield* tryLock(connection, known)
      // Another live run holding a random key is a chance in two billion: draw again.
      : yield* Effect.retry(Effect.suspend(() => tryLock(connection, randomInt(1, 2 ** 31 - 1))), { times: 5 })
    yield* Ref.set(key, held)
    // Unlock before the connection goes back to the pool: a pooled session must not keep us "alive".
    yield* Effect.addFinalizer(() => Effect.ignore(connection.execute("SELECT pg_advisory_unlock($1, $2)", [NAMESPACE, held], undefined)))
    yield* Deferred.succeed(locked, held)
    // Returns (fails) only when the connection breaks.
    yield* connection.execute("SELECT 1", [], undefined).pipe(Effect.repeat(Schedule.spaced(Duration.seconds(2))))
  }).pipe(Effect.scoped)

  yield* Effect.forkScoped(
    session.pipe(
      Effect.tapError((error) => Effect.logWarning(`incarnation lock lost, taking it again: ${error.message}`)),
      Effect.retry(Schedule.spaced(Duration.seconds(1)))
    )
  )
  const self = yield* Deferred.await(locked).pipe(
    Effect.timeoutFail({ duration: Duration.seconds(30), onTimeout: () => new StoreError({ operation: "incarnations.lock", message: "could not take an incarnation lock within 30 s", retryable: true }) })
  )
  const alive = sql<{ key: string }>`
    SELECT objid::bigint AS key FROM pg_locks
    WHERE locktype = 'advisory' AND classid = ${NAMESPACE}::bigint::oid AND objsubid = 2 AND granted
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`.pipe(
    Effect.map((rows) => new Set(rows.map((r) => idOf(Number(r.key))))),
    Effect.mapError(storeError("incarnations.alive"))
  )
  return Incarnations.of({ self: idOf(self), alive })
})

export const PgIncarnations = {
  /** This run's incarnation, alive for the layer's lifetime (and not a moment after the process dies). */
  layer: Layer.scoped(Incarnations, make)
}

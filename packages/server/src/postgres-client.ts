/**
 * The server's Postgres client, set to fail fast when the database cannot be reached, so that every request is
 * answered in bounded time and the pool heals by itself once the database is back.
 *
 * - `connectTimeout` 3 s: a restarting or failed-over Postgres refuses or drops new connections; a connect that
 *   neither succeeds nor fails (a partition) gives up after 3 s instead of Node's minutes-long TCP timeout.
 * - `statement_timeout` 15 s (server side): no statement of the pool runs that long (a pass's listing of 10,000
 *   rows takes tens of milliseconds); one that does is stuck behind a lock and is cut, its locks released.
 * - `idle_in_transaction_session_timeout` 15 s: a transaction whose client vanished mid-way (a killed replica,
 *   a partition) does not hold its row locks — a claimed row's — until the TCP connection dies.
 * - TCP keepalive after 5 s idle: a connection the network silently dropped is found and closed by the kernel,
 *   for the idle connections and the LISTEN connection alike.
 * - A connection silent for 4 s while a statement is in flight is destroyed (`SILENT_MS`): in a partition, bytes
 *   stop and no error ever comes; pg's own `query_timeout` would fail the statement but give the connection back
 *   to the pool with the statement still pending, so every later statement on it would hang as well. Destroying
 *   it also means a statement its caller gave up on (the store's 3 s deadline) is never delivered once the
 *   partition heals: a claim answered 503 does not take an idle row behind its client's back. No statement of the
 *   pool is silent that long when the database is healthy (claims skip locked rows; nothing else waits on locks).
 * Callers bound their own waits on top of this (the store's deadline, the lease's renewal timeout); these settings
 * make sure the connections they leave behind are cleaned up, not reused half-dead.
 */
import { PgClient } from "@effect/sql-pg"
import { SqlError } from "@effect/sql/SqlError"
import { Effect, Redacted } from "effect"
import pg from "pg"

const CONNECT_TIMEOUT_MS = 3_000
const STATEMENT_TIMEOUT_MS = 15_000
const IDLE_IN_TRANSACTION_MS = 15_000
const KEEPALIVE_AFTER_MS = 5_000
/** A connection with a statement in flight and nothing received for this long is taken for dead. */
export const SILENT_MS = 4_000

/** The internals of a pg client this module relies on (stable across pg 8). */
interface ClientInternals {
  readonly _activeQuery: unknown
  readonly connection: { readonly stream: import("node:net").Socket }
}

export const pgClientLayer = (url: Redacted.Redacted<string>) =>
  PgClient.layerFromPool({
    applicationName: "warmpool",
    acquire: Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const pool = new pg.Pool({
            connectionString: Redacted.value(url),
            connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
            statement_timeout: STATEMENT_TIMEOUT_MS,
            idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_MS,
            keepAlive: true,
            keepAliveInitialDelayMillis: KEEPALIVE_AFTER_MS,
            idleTimeoutMillis: 30_000,
            max: 10,
            application_name: "warmpool"
          })
          // An idle connection that breaks is removed by the pool; the error needs a listener or Node exits.
          pool.on("error", () => {})
          pool.on("connect", (client) => {
            const { connection } = client as unknown as ClientInternals
            connection.stream.setTimeout(SILENT_MS)
            connection.stream.on("timeout", () => {
              // Silence while idle is normal (an idle or LISTEN connection); while a statement waits, it is a partition.
              if ((client as unknown as ClientInternals)._activeQuery != null) {
                connection.stream.destroy(new Error(`no answer from Postgres within ${SILENT_MS} ms`))
              }
            })
          })
          // As PgClient.layer does: the first connection proves the URL and credentials, within the connect timeout.
          await pool.query("SELECT 1")
          return pool
        },
        catch: (cause) => new SqlError({ cause, message: "PgClient: failed to connect" })
      }),
      (pool) => Effect.promise(() => pool.end()).pipe(Effect.timeoutOption(1_000))
    )
  })

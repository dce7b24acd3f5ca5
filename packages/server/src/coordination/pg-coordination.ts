/**
 * Coordination in Postgres: it holds across replicas and restarts. A lock is a transaction-scoped advisory lock
 * (one waiter per key per replica: the others wait in process, not on a connection each); a conversation's
 * reservation and an Idempotency-Key's answer are rows, written under such a lock.
 */
import { SqlClient, SqlError } from "@effect/sql"
import { StoreError } from "@warmpool/reconciler"
import { Effect, Layer, Option } from "effect"
import { Coordination, IDEMPOTENCY_TTL_MS, IdempotencyStart, inProcessCoordination, RESERVATION_TTL_MS } from "./coordination.js"

/** Statuses that hold a conversation: one instance per conversation among them. */
const HOLDING = ["claiming", "claimed", "pending_acceptance"] as const

/** The tables (the index on `instances` comes after the store's migrations: see `indexConversations`). */
export const createCoordinationTables = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE IF NOT EXISTS warmpool_conversation_claims (
      join_url TEXT PRIMARY KEY,
      holder TEXT NOT NULL,
      instance_id TEXT,
      expires_at TIMESTAMPTZ NOT NULL
    )`
  yield* sql`
    CREATE TABLE IF NOT EXISTS warmpool_idempotent_claims (
      key TEXT PRIMARY KEY,
      fingerprint TEXT NOT NULL,
      answer JSONB,
      created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )`
  yield* sql`CREATE INDEX IF NOT EXISTS warmpool_idempotent_claims_created ON warmpool_idempotent_claims (created_at)`
})

/** Finds a conversation's instance without a scan. Needs the store's `status` column: run after its migrations. */
export const indexConversations = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql`CREATE INDEX IF NOT EXISTS instances_holding_invite ON instances (invite_url) WHERE status IN ('claiming', 'claimed', 'pending_acceptance')`)

const storeError = (operation: string) => (error: SqlError.SqlError) => new StoreError({ operation, message: error.message, retryable: true })

export const makePgCoordination = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  // In process first: a replica sends one waiter per key to the database, not one connection per request.
  const local = yield* inProcessCoordination(() => Effect.succeed(Option.none()))

  /** Inside a transaction: the advisory lock of `key`, released at its end. */
  const advisoryLock = (key: string) => sql`SELECT pg_advisory_xact_lock(hashtextextended(${key}, 0))`

  const exclusive = (key: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    local.exclusive(key)(
      sql.withTransaction(Effect.zipRight(advisoryLock(`warmpool:${key}`).pipe(Effect.mapError(storeError("coordination.lock"))), effect)).pipe(
        // The transaction's own BEGIN and COMMIT; the effect's errors pass as they are.
        Effect.mapError((e) => (e instanceof SqlError.SqlError ? storeError("coordination.lock")(e) : e as E | StoreError))
      )
    )

  const service: Coordination["Type"] = {
    exclusive,
    reserveConversation: (joinUrl, holder) =>
      sql.withTransaction(Effect.gen(function*() {
        yield* advisoryLock(`warmpool:conversation:${joinUrl}`)
        const active = yield* sql<{ id: string }>`
          SELECT id FROM instances WHERE invite_url = ${joinUrl} AND status IN ${sql.in(HOLDING)} LIMIT 1`
        if (active.length > 0) return Option.some({ instanceId: active[0]!.id })
        // A reservation holds while its claim runs (it is deleted when the claim ends) and is fresh (its replica may have
        // died). Whatever became of the instance it names: a claim whose first instance failed goes on to another one.
        const held = yield* sql<{ instanceId: string | null }>`
          SELECT instance_id AS "instanceId" FROM warmpool_conversation_claims
          WHERE join_url = ${joinUrl} AND expires_at > now()`
        if (held.length > 0) return Option.some({ instanceId: held[0]!.instanceId })
        yield* sql`
          INSERT INTO warmpool_conversation_claims (join_url, holder, instance_id, expires_at)
          VALUES (${joinUrl}, ${holder}, NULL, now() + ${`${RESERVATION_TTL_MS} milliseconds`}::interval)
          ON CONFLICT (join_url) DO UPDATE SET holder = EXCLUDED.holder, instance_id = NULL, expires_at = EXCLUDED.expires_at`
        return Option.none()
      })).pipe(Effect.mapError(storeError("coordination.reserveConversation"))),
    attachConversation: (joinUrl, holder, instanceId) =>
      sql`UPDATE warmpool_conversation_claims SET instance_id = ${instanceId} WHERE join_url = ${joinUrl} AND holder = ${holder}`.pipe(
        Effect.asVoid,
        Effect.mapError(storeError("coordination.attachConversation"))
      ),
    releaseConversation: (joinUrl, holder) =>
      sql`DELETE FROM warmpool_conversation_claims WHERE join_url = ${joinUrl} AND holder = ${holder}`.pipe(
        Effect.asVoid,
        Effect.mapError(storeError("coordination.releaseConversation"))
      ),
    startIdempotent: (key, fingerprint) =>
      sql.withTransaction(Effect.gen(function*() {
        yield* advisoryLock(`warmpool:idempotency:${key}`)
        yield* sql`DELETE FROM warmpool_idempotent_claims WHERE created_at < now() - ${`${IDEMPOTENCY_TTL_MS} milliseconds`}::interval`
        const known = yield* sql<{ fingerprint: string; answer: unknown; abandoned: boolean }>`
          SELECT fingerprint, answer, created_at < now() - ${`${RESERVATION_TTL_MS} milliseconds`}::interval AS abandoned
          FROM warmpool_idempotent_claims WHERE key = ${key}`
        const row = known[0]
        // Unanswered for longer than any claim runs: its replica died mid-claim; this request claims instead.
        if (row === undefined || (row.answer === null && row.abandoned)) {
          yield* sql`
            INSERT INTO warmpool_idempotent_claims (key, fingerprint) VALUES (${key}, ${fingerprint})
            ON CONFLICT (key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, answer = NULL, created_at = now()`
          return IdempotencyStart.First()
        }
        if (row.fingerprint !== fingerprint) return IdempotencyStart.Mismatch()
        return row.answer === null ? IdempotencyStart.Running() : IdempotencyStart.Answered({ answer: row.answer })
      })).pipe(Effect.mapError(storeError("coordination.startIdempotent"))),
    finishIdempotent: (key, answer) =>
      sql`UPDATE warmpool_idempotent_claims SET answer = ${JSON.stringify(answer)}::jsonb WHERE key = ${key}`.pipe(
        Effect.asVoid,
        Effect.mapError(storeError("coordination.finishIdempotent"))
      ),
    abandonIdempotent: (key) =>
      sql`DELETE FROM warmpool_idempotent_claims WHERE key = ${key}`.pipe(Effect.asVoid, Effect.mapError(storeError("coordination.abandonIdempotent")))
  }
  return service
})

export const PgCoordination = { layer: Layer.effect(Coordination, makePgCoordination) }

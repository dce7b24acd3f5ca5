/**
 * Claims per second through `PgInstanceStore.claimIdle` at 1, 8 and 32 concurrent callers, against a raw
 * loop of the same SQL statement on the `pg` driver in the same run. The ratio says what the store's
 * Effect layers cost on the hot path.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import pg from "pg"
import { InstanceStore } from "@warmpool/reconciler"
import { PgInstanceStore } from "../src/index.js"
import { currentDatabaseUrl, freshDatabase, testServer } from "../src/testing.js"

const ROWS = 3_000
/** The store's own statement (newest idle first, protected instances excluded), as the driver runs it. */
const CLAIM_SQL = `
  UPDATE instances SET status = 'claiming', status_changed_at = now(), intent_by = $3
  WHERE id IN (
    SELECT id FROM instances WHERE status = 'idle' AND pool = $1 AND NOT (id = ANY($4::text[]))
    ORDER BY created_at DESC, id LIMIT $2 FOR UPDATE SKIP LOCKED
  )
  RETURNING *`

const fillIdle = (pool: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`INSERT INTO instances (id, pool, name, status, created_at)
        SELECT ${pool} || '-' || g, ${pool}, ${pool} || '-' || g, 'idle', now() - g * interval '1 second'
        FROM generate_series(1, ${ROWS}) AS g`)

/** Runs `claim` from `workers` loops until the pool is empty; claims per second. */
const rate = (workers: number, claim: Effect.Effect<boolean, unknown>) =>
  Effect.gen(function*() {
    const started = performance.now()
    const counts = yield* Effect.forEach(Array.from({ length: workers }), () =>
      Effect.iterate(0, { while: (n) => n >= 0, body: (n) => Effect.map(claim, (won) => (won ? n + 1 : -n - 1)) }).pipe(Effect.map((n) => -n - 1)), { concurrency: "unbounded" })
    const claimed = counts.reduce((a, b) => a + b, 0)
    if (claimed !== ROWS) throw new Error(`claimed ${claimed} of ${ROWS}`)
    return (claimed / (performance.now() - started)) * 1000
  })

const bench = Effect.gen(function*() {
  const { url } = yield* testServer
  return yield* Effect.gen(function*() {
    const store = yield* InstanceStore
    const results: Record<string, number> = {}
    for (const workers of [1, 8, 32]) {
      yield* fillIdle(`store${workers}`)
      results[`claim.store.rate.c${workers}`] = yield* rate(workers, Effect.map(store.claimIdle(`store${workers}`, 1, "bench"), (rows) => rows.length > 0))
    }
    const raw = new pg.Pool({ connectionString: yield* currentDatabaseUrl(url), max: 32 })
    yield* fillIdle("raw32")
    const rawRate = yield* rate(32, Effect.promise(() => raw.query(CLAIM_SQL, ["raw32", 1, "bench", []])).pipe(Effect.map((r) => (r.rowCount ?? 0) > 0)))
    yield* Effect.promise(() => raw.end())
    results["claim.store.rate"] = results["claim.store.rate.c32"]!
    results["claim.raw.rate"] = rawRate
    results["claim.store_vs_raw"] = results["claim.store.rate.c32"]! / rawRate
    return results
  }).pipe(Effect.provide(PgInstanceStore.layer.pipe(Layer.provideMerge(freshDatabase(url, { maxConnections: 32 })))))
}).pipe(Effect.scoped)

export const run = (): Promise<Record<string, number>> => Effect.runPromise(bench)

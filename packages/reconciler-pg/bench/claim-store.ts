/**
 * Claims per second through `PgInstanceStore.claimIdle` at 1, 8 and 32 concurrent callers, against a raw
 * loop of the same SQL statement on the `pg` driver in the same run. The ratio says what the store's
 * Effect layers cost on the hot path. At 32 callers the store and the raw loop take turns, five rounds of one
 * each (which goes first alternates), and the ratio is the median of the rounds' ratios: one second of each alone
 * said as much about what else the machine did then (two cores, shared with Postgres) as about the store.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import pg from "pg"
import { InstanceStore } from "@warmpool/reconciler"
import { PgInstanceStore } from "../src/index.js"
import { currentDatabaseUrl, freshDatabase, testServer } from "../src/testing.js"

const ROWS = 3_000
const ROUNDS = 5
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

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

const bench = Effect.gen(function*() {
  const { url } = yield* testServer
  return yield* Effect.gen(function*() {
    const store = yield* InstanceStore
    const results: Record<string, number> = {}
    const throughStore = (workers: number, pool: string) =>
      Effect.zipRight(fillIdle(pool), rate(workers, Effect.map(store.claimIdle(pool, 1, "bench"), (rows) => rows.length > 0)))
    for (const workers of [1, 8]) results[`claim.store.rate.c${workers}`] = yield* throughStore(workers, `store${workers}`)
    // The driver's pool ends before the database is dropped (its idle clients would be terminated).
    const raw = new pg.Pool({ connectionString: yield* currentDatabaseUrl(url), max: 32 })
    // An idle client that Postgres ends (a server shutting down) is reported here; unheard, it would crash the run.
    raw.on("error", (error) => console.error(`claim-store: the driver's pool: ${error.message}`))
    const throughDriver = (pool: string) =>
      Effect.zipRight(fillIdle(pool), rate(32, Effect.promise(() => raw.query(CLAIM_SQL, [pool, 1, "bench", []])).pipe(Effect.map((r) => (r.rowCount ?? 0) > 0))))
    const storeRates: Array<number> = []
    const rawRates: Array<number> = []
    yield* Effect.gen(function*() {
      for (let round = 0; round < ROUNDS; round++) {
        const store = throughStore(32, `store32-${round}`).pipe(Effect.map((r) => void storeRates.push(r)))
        const driver = throughDriver(`raw32-${round}`).pipe(Effect.map((r) => void rawRates.push(r)))
        yield* (round % 2 === 0 ? Effect.zipRight(store, driver) : Effect.zipRight(driver, store))
      }
    }).pipe(Effect.ensuring(Effect.promise(() => raw.end())))
    results["claim.store.rate.c32"] = median(storeRates)
    results["claim.store.rate"] = median(storeRates)
    results["claim.raw.rate"] = median(rawRates)
    results["claim.store_vs_raw"] = median(storeRates.map((rate, round) => rate / rawRates[round]!))
    return results
  }).pipe(Effect.provide(PgInstanceStore.layer.pipe(Layer.provideMerge(freshDatabase(url, { maxConnections: 32 })))))
}).pipe(Effect.scoped)

export const run = (): Promise<Record<string, number>> => Effect.runPromise(bench)

/**
 * Claims over HTTP at 32 concurrent clients (Postgres store, an instantly answering runtime; the server in its
 * own process, as in production), against store claims at 32 callers on the same database in the same run.
 * Each side is warmed up first (JIT, connection pools) with claims that are not counted.
 */
import { SqlClient } from "@effect/sql"
import { InstanceStore } from "@warmpool/reconciler"
import { PgInstanceStore } from "@warmpool/reconciler-pg"
import { currentDatabaseUrl, freshDatabase, testServer } from "@warmpool/reconciler-pg/testing"
import { Effect, Layer, Logger, LogLevel } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { Agent, request } from "node:http"
import { fileURLToPath } from "node:url"
import { migrateServerTables } from "../src/migrations.js"

const ROWS = 4_000
const WARMUP_ROWS = 3_000
const CLIENTS = 32
const KEY = "bench-key"

const fillIdle = (pool: string, round: string, rows: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`INSERT INTO instances (id, pool, name, status, url, created_at)
        SELECT ${pool} || '-' || ${round} || '-' || g, ${pool}, ${pool} || '-' || ${round} || '-' || g, 'idle',
          'http://127.0.0.1:9', now() - g * interval '1 second'
        FROM generate_series(1, ${rows}) AS g`)

/** `worker` claims from `pool`: a warm-up round, then a measured one of ROWS claims. */
const measure = (pool: string, worker: Effect.Effect<boolean, unknown>) =>
  Effect.gen(function*() {
    yield* fillIdle(pool, "warmup", WARMUP_ROWS)
    yield* drive(worker, WARMUP_ROWS)
    yield* fillIdle(pool, "measured", ROWS)
    return yield* drive(worker, ROWS)
  })

/** `worker` from CLIENTS loops until one says "none left"; claims per second and each claim's latency. */
const drive = (worker: Effect.Effect<boolean, unknown>, rows: number) =>
  Effect.gen(function*() {
    const latencies: Array<number> = []
    const timed = Effect.suspend(() => {
      const started = performance.now()
      return Effect.tap(worker, (won) => Effect.sync(() => won && latencies.push(performance.now() - started)))
    })
    const started = performance.now()
    yield* Effect.forEach(Array.from({ length: CLIENTS }), () => Effect.repeat(timed, { while: (won) => won }), { concurrency: "unbounded" })
    if (latencies.length !== rows) throw new Error(`claimed ${latencies.length} of ${rows}`)
    const sorted = latencies.sort((a, b) => a - b)
    return { rate: (rows / (performance.now() - started)) * 1000, p99: sorted[Math.floor(sorted.length * 0.99)]! }
  })

/** The server in its own process on `databaseUrl`; its port once it is ready. */
const serverProcess = (databaseUrl: string) =>
  Effect.acquireRelease(
    Effect.async<{ readonly child: ChildProcess; readonly port: number }>((resume) => {
      const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", fileURLToPath(new URL("./support/claim-server.ts", import.meta.url))], {
        env: { ...process.env, DATABASE_URL: databaseUrl, POOL_API_KEY: KEY },
        stdio: ["ignore", "pipe", "inherit"]
      })
      child.stdout!.on("data", (data: Buffer) => {
        const ready = /ready (\d+)/.exec(String(data))
        if (ready) resume(Effect.succeed({ child, port: Number(ready[1]) }))
      })
    }),
    ({ child }) =>
      Effect.async<void>((resume) => {
        child.once("exit", () => resume(Effect.void))
        child.kill()
      })
  )

const bench = Effect.gen(function*() {
  const { url } = yield* testServer
  return yield* Effect.gen(function*() {
    const { port } = yield* serverProcess(yield* currentDatabaseUrl(url))
    const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS })
    const body = JSON.stringify({ agentName: "bench", instructions: "" })
    const http = yield* measure("http", Effect.async<boolean, Error>((resume) => {
      const req = request({
        host: "127.0.0.1",
        port,
        path: "/api/pool/claim",
        method: "POST",
        agent,
        headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json", "content-length": Buffer.byteLength(body) }
      }, (res) => {
        res.resume()
        res.on("end", () =>
          resume(res.statusCode === 200 || res.statusCode === 503 ? Effect.succeed(res.statusCode === 200) : Effect.fail(new Error(`HTTP ${res.statusCode}`))))
      })
      req.on("error", (e) => resume(Effect.fail(e)))
      req.end(body)
    }))
    agent.destroy()
    const store = yield* InstanceStore
    const direct = yield* measure("direct", Effect.map(store.claimIdle("direct"), (rows) => rows.length > 0))
    return {
      "claim.http.rate": http.rate,
      "claim.http.p99.ms": http.p99,
      "claim.store.rate.same_run": direct.rate,
      "claim.http_vs_store": http.rate / direct.rate
    }
  }).pipe(Effect.provide(PgInstanceStore.layer.pipe(Layer.provideMerge(freshDatabase(url, { maxConnections: 32, migrate: migrateServerTables })))))
}).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))

export const run = (): Promise<Record<string, number>> => Effect.runPromise(bench)

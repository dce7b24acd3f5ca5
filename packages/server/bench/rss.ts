/**
 * Resident memory of the server process with 10,000 instance rows: the built server (`dist/main.js serve`)
 * on its own database, after it has run passes over them and served `/api/pool/status` (all rows as JSON).
 */
import { SqlClient } from "@effect/sql"
import { freePort } from "@warmpool/reconciler"
import { currentDatabaseUrl, freshDatabase, testServer } from "@warmpool/reconciler-pg/testing"
import { Effect, Layer, Schedule } from "effect"
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { migrateServerTables } from "../src/migrations.js"

const ROWS = 10_000
const main = fileURLToPath(new URL("../dist/main.js", import.meta.url))

const rssMb = (pid: number) => {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"))!
  return Number(/(\d+)/.exec(line)![1]) / 1024
}

const bench = Effect.gen(function*() {
  const { url } = yield* testServer
  return yield* Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    // Claimed rows: their services are on no platform here, so passes mark them crashed and delete nothing.
    yield* sql`INSERT INTO instances (id, pool, name, status, url, agent_name, created_at, claimed_at, gateway_token)
               SELECT 'r' || g, 'default', 'convos-agent-r' || g, 'claimed', 'https://r' || g || '.up.railway.app', 'agent ' || g,
                      now() - interval '1 day', now() - interval '1 hour', md5(g::text) || md5(g::text)
               FROM generate_series(1, ${ROWS}) AS g`
    const port = yield* freePort
    const databaseUrl = yield* currentDatabaseUrl(url)
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, [main, "serve"], {
          env: {
            PATH: process.env.PATH ?? "",
            PORT: String(port),
            DATABASE_URL: databaseUrl,
            POOL_API_KEY: "rss-bench",
            POOL_MIN_IDLE: "0",
            POOL_MAX_TOTAL: String(ROWS * 2),
            TICK_INTERVAL_MS: "500",
            WARMPOOL_DATA_DIR: mkdtempSync(join(tmpdir(), "warmpool-rss-"))
          },
          stdio: "ignore"
        })),
      (child) => Effect.sync(() => child.kill())
    )
    const status = Effect.tryPromise(() =>
      fetch(`http://127.0.0.1:${port}/api/pool/status`, { headers: { authorization: "Bearer rss-bench" } }).then((r) => r.json() as Promise<{ instances: Array<unknown> }>))
    const answer = yield* status.pipe(Effect.retry(Schedule.spaced("250 millis").pipe(Schedule.upTo("30 seconds"))))
    if (answer.instances.length !== ROWS) throw new Error(`status listed ${answer.instances.length} rows`)
    yield* Effect.sleep("3 seconds") // passes over every row
    yield* status
    return { "server.rss.10k.mb": rssMb(child.pid!) }
  }).pipe(Effect.provide(freshDatabase(url, { migrate: migrateServerTables }).pipe(Layer.fresh)))
}).pipe(Effect.scoped)

export const run = (): Promise<Record<string, number>> => Effect.runPromise(bench)

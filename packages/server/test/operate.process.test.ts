/**
 * The operator's variables and routes on the built server, in its own process, as a deployment runs it:
 * POOL_CLAIM_KEYS and Railway's variables read at start (PROTECTED_INSTANCES parsed beside them; what it guards is
 * tested in operate.test.ts), `target_idle` kept in the database
 * across a restart.
 */
import { databaseUrl, onServer } from "@warmpool/reconciler-pg/testing"
import { Effect, Exit, Scope } from "effect"
import { randomBytes } from "node:crypto"
import { chmodSync, existsSync, mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, inject, it } from "vitest"
import { main, type ServerProcess, startServer, stop, until } from "./support/process.js"

const KEY = "process-operate-key-0123456789"
const CLAIM_KEY = "process-claim-key-0123456789"

describe.runIf(existsSync(main))("the built server, operated", () => {
  it("reads POOL_CLAIM_KEYS and Railway's variables; target_idle survives a restart", async () => {
    const scope = Effect.runSync(Scope.make())
    const postgres = inject("postgresUrl")
    const name = `warmpool_operate_${randomBytes(5).toString("hex")}`
    await Effect.runPromise(Scope.extend(Effect.acquireRelease(
      onServer(postgres, (sql) => sql.unsafe(`CREATE DATABASE ${name}`)),
      () => onServer(postgres, (sql) => sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).pipe(Effect.ignore)
    ), scope))
    const dataDir = mkdtempSync(join(tmpdir(), "warmpool-operate-"))
    chmodSync(dataDir, 0o755)
    const env = {
      DATABASE_URL: databaseUrl(postgres, name),
      WARMPOOL_DATA_DIR: dataDir,
      POOL_PROVIDER: "local",
      POOL_API_KEY: KEY,
      POOL_CLAIM_KEYS: ` other-claim-key-0123456789 , ${CLAIM_KEY} `,
      PROTECTED_INSTANCES: "kept-1,kept-2",
      POOL_MIN_IDLE: "0",
      TICK_INTERVAL_MS: "500",
      RAILWAY_ENVIRONMENT_NAME: "staging",
      RAILWAY_GIT_BRANCH: "feature-x",
      RAILWAY_SERVICE_ID: "svc-pool-1"
    }
    const call = (server: ServerProcess, method: string, path: string, key: string | null = KEY, body?: object) =>
      fetch(`${server.base}${path}`, {
        method,
        headers: { ...(key === null ? {} : { authorization: `Bearer ${key}` }), ...(body === undefined ? {} : { "content-type": "application/json" }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      }).then(async (r) => ({ status: r.status, json: await r.json() }))
    const ready = (server: ServerProcess) => until("the server to answer", async () => ((await fetch(`${server.base}/healthz`)).ok ? true : undefined), 60_000)
    let server: ServerProcess | undefined
    try {
      server = await startServer(env)
      await ready(server)
      expect((await call(server, "GET", "/api/pool/info", null)).json).toEqual({ environment: "staging", branch: "feature-x", railwayServiceId: "svc-pool-1" })
      expect((await call(server, "GET", "/version", null)).json).toEqual({ version: "0.1.0", environment: "staging" })
      expect((await call(server, "GET", "/api/pool/scope", CLAIM_KEY)).json).toEqual({ scope: "claim" })
      expect((await call(server, "GET", "/api/pool/status", CLAIM_KEY)).status).toBe(403)

      expect((await call(server, "GET", "/api/pool/settings")).json).toEqual({ target_idle: "0" })
      expect((await call(server, "PUT", "/api/pool/settings", KEY, { target_idle: "1" })).json).toEqual({ target_idle: "1" })
      await until("one instance made for target_idle 1", async () => {
        const counts = (await call(server!, "GET", "/api/pool/counts", null)).json
        return counts.creating + counts.starting + counts.idle === 1 ? true : undefined
      }, 30_000)
      server.child.kill("SIGTERM")
      await server.exited

      server = await startServer(env)
      await ready(server)
      expect((await call(server, "GET", "/api/pool/settings")).json).toEqual({ target_idle: "1" })
      expect((await call(server, "GET", "/api/pool/status")).json.pools.default.minIdle).toBe(1)
      server.child.kill("SIGTERM")
      await server.exited
    } catch (error) {
      throw new Error(`${String(error)}\n--- server output ---\n${server?.output().slice(-3000) ?? ""}`)
    } finally {
      await stop(server)
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }, 120_000)
})

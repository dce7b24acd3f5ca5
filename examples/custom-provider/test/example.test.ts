import { expect, it } from "@effect/vitest"
import { freePort } from "@warmpool/reconciler"
import { databaseUrl, onServer } from "@warmpool/reconciler-pg/testing"
import { ConfigProvider, Duration, Effect, Fiber, Schedule } from "effect"
import { inject } from "vitest"
import { program } from "../src/main.js"

it.live("the server runs on a custom provider: the pool fills and a claim works over HTTP", () =>
  Effect.gen(function*() {
    const server = inject("postgresUrl")
    const name = `warmpool_example_${Date.now().toString(36)}`
    yield* Effect.acquireRelease(
      onServer(server, (sql) => sql.unsafe(`CREATE DATABASE ${name}`)),
      () => onServer(server, (sql) => sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).pipe(Effect.ignore)
    )
    const port = yield* freePort
    const config = ConfigProvider.fromMap(new Map([
      ["PORT", String(port)],
      ["DATABASE_URL", databaseUrl(server, name)],
      ["POOL_API_KEY", "example-key"],
      ["POOL_MIN_IDLE", "2"],
      ["TICK_INTERVAL_MS", "200"]
    ]))
    const running = yield* Effect.fork(program.pipe(Effect.withConfigProvider(config)))
    const base = `http://127.0.0.1:${port}`
    const counts = yield* Effect.tryPromise(() => fetch(`${base}/api/pool/counts`).then((r) => r.json())).pipe(
      Effect.filterOrFail((c: { idle: number }) => c.idle >= 2),
      Effect.retry(Schedule.spaced(Duration.millis(200)).pipe(Schedule.upTo(Duration.seconds(20))))
    )
    expect(counts.idle).toBe(2)
    const claim = yield* Effect.tryPromise(() =>
      fetch(`${base}/api/pool/claim`, {
        method: "POST",
        headers: { authorization: "Bearer example-key", "content-type": "application/json" },
        body: JSON.stringify({ agentName: "custom", instructions: "hi" })
      }).then(async (r) => ({ status: r.status, body: await r.json() })))
    expect(claim.status).toBe(200)
    expect(claim.body.gatewayUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    yield* Fiber.interrupt(running)
  }).pipe(Effect.scoped), 40_000)

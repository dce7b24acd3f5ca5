/**
 * Railway webhooks end to end: the server on loopback, the Railway provider on the emulator, which delivers
 * deployment events to the registered webhook as Railway does. Events are triggers only: a crash reaches the
 * row within a second, a lost one is caught by the next tick, and bad input changes nothing.
 */
import { HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Railway, RailwayCompute, registerPoolWebhook, webhookSecret } from "@warmpool/providers-railway"
import { startRailwayEmulator } from "@warmpool/providers-railway/emulator"
import { Controller, LocalIncarnations, PoolSpec, SingleLeader } from "@warmpool/reconciler"
import { InMemoryCredentials, InMemoryHealth, InMemoryStore, InMemoryStoreControl } from "@warmpool/reconciler/testing"
import { InMemoryConvosRuntime } from "@warmpool/providers-convos/testing"
import { Context, Duration, Effect, Layer, Logger, LogLevel, Option, Redacted } from "effect"
import { createServer } from "node:http"
import { httpApiLayer } from "../src/index.js"

const KEY = "test-key-0123456789"
const SECRET = Redacted.value(webhookSecret({ secret: Option.none() }, Redacted.make(KEY)))
const spec = new PoolSpec({ name: "pool", namePrefix: "convos-agent-", minIdle: 2, maxTotal: 5, template: { image: "img", env: { PORT: "8080" } } })

type RailwayEmulator = Effect.Effect.Success<ReturnType<typeof startRailwayEmulator>>
class Emulator extends Context.Tag("test/RailwayEmulator")<Emulator, RailwayEmulator>() {}

const logs: Array<string> = []
const capture = Logger.make(({ annotations, message }) => logs.push(`${String(message)} ${JSON.stringify([...annotations])}`))

const world = (tickInterval: Duration.DurationInput) => {
  const compute = Layer.unwrapEffect(Effect.map(Emulator, (emulator) =>
    RailwayCompute.layer(emulator.providerOptions({ runtimeImage: "img", ratePerSecond: 1_000, ratePerHour: 100_000, timeout: Duration.seconds(5) }))))
  return httpApiLayer({ environment: "dev", apiKey: Redacted.make(KEY) }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
    Layer.provideMerge(Controller.layer(spec, { tickInterval, readinessInterval: Duration.millis(100) })),
    Layer.provideMerge(Layer.mergeAll(compute, InMemoryStore.layer, InMemoryHealth.layer(), InMemoryCredentials.layer, InMemoryConvosRuntime.layer(), SingleLeader, LocalIncarnations.layer())),
    Layer.provideMerge(Layer.scoped(Emulator, startRailwayEmulator({ deployMs: 200 }))),
    Layer.provide(Logger.replace(Logger.defaultLogger, capture)),
    Layer.provide(Logger.minimumLogLevel(LogLevel.All))
  )
}

const base = Effect.map(HttpServer.HttpServer, (server) => `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`)

const post = (path: string, body: string, headers: Record<string, string> = { "content-type": "application/json" }) =>
  Effect.flatMap(base, (url) =>
    Effect.promise(async () => {
      const response = await fetch(`${url}${path}`, { method: "POST", headers, body })
      return { status: response.status, json: await response.json().catch(() => undefined) }
    }))

const rows = Effect.flatMap(InMemoryStoreControl, (c) => c.rows)
const until = <A, E, R>(effect: Effect.Effect<A, E, R>, ok: (a: A) => boolean, ms = 10_000): Effect.Effect<A, E, R> =>
  Effect.repeat(Effect.zipRight(Effect.sleep(Duration.millis(25)), effect), { until: (a: A) => ok(a), times: Math.ceil(ms / 25) })

/** The filled pool with one claimed instance, and the webhook registered at the server's address. */
const claimedOne = Effect.gen(function*() {
  const controller = yield* Controller
  yield* until(rows, (all) => all.filter((r) => r.status === "idle").length === 2)
  const { instance } = yield* controller.claim({ agentName: "tokyo", instructions: "" })
  const railway = yield* Railway
  const publicUrl = yield* base
  yield* registerPoolWebhook(railway, { secret: Option.none(), publicUrl: Option.some(publicUrl), workspaceId: Option.some("workspace-1") }, Redacted.make(SECRET))
  return instance
})

describe("POST /webhooks/railway/:secret", () => {
  it.live("a crash reaches the row within a second, through the webhook (the tick is an hour away)", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const instance = yield* claimedOne
      const crashedAt = Date.now()
      emulator.setDeploymentStatus(instance.serviceId!, "CRASHED")
      yield* until(rows, (all) => all.some((r) => r.id === instance.id && r.status === "crashed"), 3_000)
      expect(Date.now() - crashedAt).toBeLessThan(1_000)
      expect(emulator.deliveries().map((d) => d.event.type)).toContain("Deployment.crashed")
    }).pipe(Effect.provide(world(Duration.hours(1)))))

  it.live("a lost webhook is still caught by the next tick", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const instance = yield* claimedOne
      emulator.dropWebhooks(1)
      emulator.setDeploymentStatus(instance.serviceId!, "CRASHED")
      expect(emulator.deliveries().at(-1)).toMatchObject({ dropped: true, event: { type: "Deployment.crashed" } })
      yield* until(rows, (all) => all.some((r) => r.id === instance.id && r.status === "crashed"), 8_000)
      expect((yield* rows).find((r) => r.id === instance.id)!.status).toBe("crashed")
    }).pipe(Effect.provide(world(Duration.seconds(2)))))

  it.live("bad input gets 401, 400 or 202 as fits, changes nothing, and the secret never reaches a log line", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const instance = yield* claimedOne
      yield* Effect.sleep(Duration.millis(300)) // the refill after the claim is done
      const before = yield* rows
      emulator.resetCounts()
      const event = (environment: string, service: string) => JSON.stringify({ type: "Deployment.crashed", resource: { environment: { id: environment }, service: { id: service } }, details: { status: "CRASHED" } })
      expect(yield* post(`/webhooks/railway/${SECRET}x`, event("env-production", instance.serviceId!))).toMatchObject({ status: 401 })
      expect(yield* post(`/webhooks/railway/${KEY}`, event("env-production", instance.serviceId!))).toMatchObject({ status: 401 })
      expect(yield* post(`/webhooks/railway/${SECRET}`, "{not json", { "content-type": "text/plain" })).toMatchObject({ status: 400 })
      expect(yield* post(`/webhooks/railway/${SECRET}`, JSON.stringify({ type: "Deployment.exploded" }))).toMatchObject({ status: 400 })
      expect(yield* post(`/webhooks/railway/${SECRET}`, event("env-scaling", instance.serviceId!))).toMatchObject({ status: 202, json: { accepted: false } })
      expect(yield* post(`/webhooks/railway/${SECRET}`, event("env-production", "someone-else"))).toMatchObject({ status: 202, json: { accepted: false } })
      yield* Effect.sleep(Duration.millis(300))
      expect(yield* rows).toEqual(before)
      expect(emulator.operations()).toEqual({})
      // The real thing is accepted.
      expect(yield* post(`/webhooks/railway/${SECRET}`, event("env-production", instance.serviceId!))).toMatchObject({ status: 202, json: { accepted: true } })
      expect(logs.filter((line) => line.includes(SECRET))).toEqual([])
    }).pipe(Effect.provide(world(Duration.hours(1)))))

  it.live("GET /api/pool/budget: requests used in the last hour against Railway's limit", () =>
    Effect.gen(function*() {
      yield* claimedOne
      const url = yield* base
      const budget = yield* Effect.promise(() => fetch(`${url}/api/pool/budget`, { headers: { authorization: `Bearer ${KEY}` } }).then((r) => r.json()))
      expect(budget).toMatchObject({ provider: "railway", hourlyLimit: 1000, rateLimited: 0, tokens: { healthy: 1, cooling: 0, dropped: 0 } })
      expect(budget.requestsLastHour).toBeGreaterThanOrEqual(4)
      expect(budget.byOperation).toMatchObject({ listServiceInstances: 1, serviceCreateBatch: expect.any(Number), notificationRules: 1, notificationRuleCreate: 1 })
      // The same on /metrics, with Railway's last rate-limit headers.
      const metrics = yield* Effect.promise(() => fetch(`${url}/metrics`).then((r) => r.text()))
      // (Metrics are the process's: other tests of this file count too.)
      expect(metrics).toMatch(/warmpool_railway_requests_total\{operation="notificationRuleCreate"\} [1-9]/)
      expect(metrics).toMatch(/warmpool_railway_rate_limit_limit 1000/)
      expect(metrics).toMatch(/warmpool_railway_rate_limit_remaining \d+/)
      expect(metrics).toMatch(/warmpool_railway_requests_last_hour [1-9]/)
      expect(metrics).toMatch(/warmpool_railway_tokens\{state="healthy"\} 1/)
      expect(metrics).toMatch(/warmpool_railway_tokens\{state="dropped"\} 0/)
    }).pipe(Effect.provide(world(Duration.hours(1)))))
})

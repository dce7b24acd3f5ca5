/**
 * Railway at scale (issue 11), on the Railway emulator: the HTTP API and the real Controller over the Railway
 * provider, rows in memory, instances "healthy" once their emulated deploy has run for DEPLOY_MS. Every request
 * the pool sends to Railway is counted (the emulator serves them).
 * - `railway.requests_per_claim`: the seed's defaults (tick 30 s, min idle 3), one claim every 1.5 s for 24
 *   claims, counted from the first claim until every replacement is idle.
 * - `refill.ms_over_ready` (p50): claim → its replacement idle, minus the replacement's own time to healthy.
 * - `railway.requests_per_create.burst20`: `POST /api/pool/replenish {"count": 20}` on a full pool, until all 20 are idle.
 * - `railway.requests_per_hour.quiet`: a full pool, nothing happening, webhooks on (so the tick is 5 min): an hour
 *   on the TestClock, passes on real HTTP.
 * - `railway.requests_per_claim.tight` (the stretch goal, ≤ 1): Hobby's 1,000 an hour with 800 spent already
 *   (Railway's headers say so), webhooks on, one claim every 3.6 s (1,000 claims an hour): creates wait for
 *   company, trading a few seconds of refill for requests; min idle 4 covers those seconds.
 */
import { HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { RailwayCompute, type RailwayOptions } from "@warmpool/providers-railway"
import { type RailwayEmulatorOptions, startRailwayEmulator } from "@warmpool/providers-railway/emulator"
import { Controller, HealthProbe, InstanceStore, LocalIncarnations, newInstance, PoolSpec, SingleLeader } from "@warmpool/reconciler"
import { InMemoryCredentials, InMemoryStore, InMemoryStoreControl } from "@warmpool/reconciler/testing"
import { InMemoryConvosRuntime } from "@warmpool/providers-convos/testing"
import { Clock, Context, Duration, Effect, Layer, Logger, LogLevel, Option, Redacted, TestClock, TestContext } from "effect"
import { createServer } from "node:http"
import { httpApiLayer, WEBHOOK_TICK_INTERVAL_MS } from "../src/index.js"

const KEY = "bench-key"
const DEPLOY_MS = 3_000
export const CLAIMS = 24
export const CLAIM_EVERY_MS = 1_500
export const spec = new PoolSpec({ name: "default", namePrefix: "convos-agent-", minIdle: 3, maxTotal: 50, template: { image: "img", env: { PORT: "8080" } } })

type RailwayEmulator = Effect.Effect.Success<ReturnType<typeof startRailwayEmulator>>
class Emulator extends Context.Tag("bench/RailwayEmulator")<Emulator, RailwayEmulator>() {}

/** `/pool/health` of an emulated instance: ready once its latest deploy has run DEPLOY_MS. */
const emulatedHealth = Layer.effect(HealthProbe, Effect.map(Emulator, (emulator) => HealthProbe.of({
  check: ({ url }) =>
    Effect.sync(() => {
      const deployment = emulator.services().find((s) => `https://${s.domain}` === url)?.deployments.at(-1)
      return deployment !== undefined && Date.now() - deployment.createdAt >= DEPLOY_MS ? "ready" : "unreachable"
    })
})))

const railwayWith = (overrides: Partial<RailwayOptions>) =>
  Layer.unwrapEffect(Effect.map(Emulator, (emulator) => RailwayCompute.layer(emulator.providerOptions({ runtimeImage: "img", ...overrides }))))

const servicesWith = (spent: number, overrides: Partial<RailwayOptions> = {}, emulatorOptions: RailwayEmulatorOptions = {}) =>
  Layer.mergeAll(railwayWith(overrides), emulatedHealth, InMemoryStore.layer, InMemoryCredentials.layer, InMemoryConvosRuntime.layer(), SingleLeader, LocalIncarnations.layer()).pipe(
    Layer.provideMerge(Layer.scoped(Emulator, startRailwayEmulator({ deployMs: DEPLOY_MS, spent, ...emulatorOptions })))
  )
const services = servicesWith(0)

export const serverWith = (pool: PoolSpec, tickMs: number, spent = 0, overrides: Partial<RailwayOptions> = {}, emulatorOptions: RailwayEmulatorOptions = {}) =>
  httpApiLayer({ environment: "dev", apiKey: Redacted.make(KEY) }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
    Layer.provideMerge(Controller.layer(pool, { tickInterval: Duration.millis(tickMs) })),
    Layer.provideMerge(servicesWith(spent, overrides, emulatorOptions))
  )
const server = serverWith(spec, 30_000)

const post = (path: string, body: object) =>
  Effect.flatMap(HttpServer.HttpServer, (http) =>
    Effect.promise(() =>
      fetch(`http://127.0.0.1:${(http.address as HttpServer.TcpAddress).port}${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
        body: JSON.stringify(body)
      }).then((r) => r.status)
    ))

const rows = Effect.flatMap(InMemoryStoreControl, (c) => c.rows)
const idleCount = Effect.map(rows, (all) => all.filter((r) => r.status === "idle").length)

/** Polls until `ok`, recording when each row was first seen idle. */
const watchUntil = (ok: Effect.Effect<boolean, never, InMemoryStoreControl>, idleSince: Map<string, number>, limitMs: number) =>
  Effect.gen(function*() {
    const started = Date.now()
    while (Date.now() - started < limitMs) {
      for (const row of yield* rows) if (row.status === "idle" && !idleSince.has(row.id)) idleSince.set(row.id, Date.now())
      if (yield* ok) return
      yield* Effect.sleep(Duration.millis(20))
    }
    throw new Error(`bench: condition not reached within ${limitMs} ms`)
  })

export const steadyClaims = (pool: PoolSpec, claimCount: number, everyMs: number) => Effect.gen(function*() {
  const emulator = yield* Emulator
  const idleSince = new Map<string, number>()
  yield* watchUntil(Effect.map(idleCount, (n) => n === pool.minIdle), idleSince, 30_000)
  const before = emulator.calls().length
  const t0 = Date.now()
  const claimedAt: Array<number> = []
  const claims = Effect.forEach(Array.from({ length: claimCount }, (_, i) => i), (i) =>
    Effect.gen(function*() {
      yield* Effect.sleep(Duration.millis(Math.max(0, t0 + i * everyMs - Date.now())))
      claimedAt.push(Date.now())
      const status = yield* post("/api/pool/claim", { agentName: `bench-${i}`, instructions: "" })
      if (status !== 200) throw new Error(`bench: claim ${i} answered ${status}`)
    }), { discard: true })
  const replacements = Effect.map(rows, (all) => all.filter((r) => r.createdAt.getTime() >= t0).sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime()))
  const refilled = Effect.map(replacements, (r) => r.length === claimCount && r.every((row) => row.status === "idle" || row.status === "claimed" || row.status === "claiming"))
  yield* Effect.all([claims, watchUntil(refilled, idleSince, claimCount * everyMs + 30_000)], { concurrency: 2 })
  const requests = emulator.calls().length - before
  const overReady = (yield* replacements).map((row, i) => idleSince.get(row.id)! - claimedAt[i]! - DEPLOY_MS).sort((a, b) => a - b)
  return { requestsPerClaim: requests / claimCount, overReadyP50: overReady[Math.floor(overReady.length / 2)]! }
})

const burst = Effect.gen(function*() {
  const emulator = yield* Emulator
  const idleSince = new Map<string, number>()
  yield* watchUntil(Effect.map(idleCount, (n) => n === spec.minIdle), idleSince, 30_000)
  const before = emulator.calls().length
  const status = yield* post("/api/pool/replenish", { count: 20 })
  if (status !== 200) throw new Error(`bench: replenish answered ${status}`)
  yield* watchUntil(Effect.map(idleCount, (n) => n === spec.minIdle + 20), idleSince, 60_000)
  return (emulator.calls().length - before) / 20
})

/** An hour of a full, quiet pool with the webhook tick, on the TestClock; each pass waited for in wall time. */
const quietHour = Effect.gen(function*() {
  const emulator = yield* Emulator
  const store = yield* InstanceStore
  for (const [i, service] of Array.from({ length: spec.minIdle }, (_, i) => emulator.addService(`convos-agent-q${i}`)).entries()) {
    yield* store.insert(newInstance({ id: `q${i}`, pool: spec.name, name: service.name, status: "idle", serviceId: service.id, url: `https://${service.domain}`, deployStatus: "SUCCESS", now: new Date(service.createdAt) }))
  }
  const controller = yield* Controller
  const wall = Clock.make()
  const passesDone = (n: number) =>
    Effect.repeat(Effect.zipRight(Effect.sleep(Duration.millis(10)).pipe(Effect.withClock(wall)), controller.lastPass), {
      until: (last) => Option.exists(last, (p) => p.pass >= n),
      times: 1_000
    })
  yield* passesDone(1) // the start-up pass
  const before = emulator.calls().length
  for (let pass = 2; pass <= 13; pass++) {
    yield* TestClock.adjust(Duration.millis(WEBHOOK_TICK_INTERVAL_MS))
    yield* passesDone(pass)
  }
  return emulator.calls().length - before
}).pipe(
  Effect.provide(Controller.layer(spec, { tickInterval: Duration.millis(WEBHOOK_TICK_INTERVAL_MS) }).pipe(Layer.provideMerge(services))),
  Effect.provide(TestContext.TestContext)
)

export const run = async (): Promise<Record<string, number>> => {
  const steady = await Effect.runPromise(steadyClaims(spec, CLAIMS, CLAIM_EVERY_MS).pipe(Effect.provide(server), Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning)))
  const tightPool = new PoolSpec({ ...spec, minIdle: 4 })
  const tight = await Effect.runPromise(
    steadyClaims(tightPool, 12, 3_600).pipe(Effect.provide(serverWith(tightPool, WEBHOOK_TICK_INTERVAL_MS, 800)), Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))
  )
  const perCreate = await Effect.runPromise(burst.pipe(Effect.provide(server), Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning)))
  const perHour = await Effect.runPromise(quietHour.pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning)))
  return {
    "railway.requests_per_claim": steady.requestsPerClaim,
    "refill.ms_over_ready": steady.overReadyP50,
    "railway.requests_per_create.burst20": perCreate,
    "railway.requests_per_hour.quiet": perHour,
    "railway.requests_per_claim.tight": tight.requestsPerClaim,
    "refill.ms_over_ready.tight": tight.overReadyP50
  }
}

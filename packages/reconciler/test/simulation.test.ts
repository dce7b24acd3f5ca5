/**
 * A deterministic simulation: the real Controller against a simulated platform with create latency,
 * random create failures, crashes, vanishing services, failed listings and claims arriving, for
 * hundreds of passes on the TestClock. Invariants are checked after every pass; convergence at the end.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Context, Duration, Effect, Exit, Fiber, Layer, Option, Ref, Scope, TestClock } from "effect"
import { Controller, Incarnations, InstanceStore, LocalIncarnations, makeIncarnationRegistry, RateLimitedError, StoreError, TransientError } from "../src/index.js"
import {
  InMemoryComputeControl,
  InMemoryCredentialsControl,
  InMemoryRuntimeControl,
  inMemoryServices,
  InMemoryStoreControl,
  seededRandom
} from "../src/testing/index.js"
import { testSpec, world } from "./support/in-memory-world.js"

const spec = testSpec({ minIdle: 5, maxTotal: 20, createBatch: 3, deleteBatch: 4, listingGraceMs: 60_000 })
const FAULTY_PASSES = 300
const SETTLE_PASSES = 30

describe("simulation", () => {
  it.effect.each([1, 7, 42])("seed %i: invariants hold on every pass, and the pool converges once faults stop", (seed) =>
    Effect.gen(function*() {
      const random = seededRandom(seed)
      const pick = <A>(xs: ReadonlyArray<A>) => xs[Math.floor(random() * xs.length)]
      const controller = yield* Controller
      const compute = yield* InMemoryComputeControl
      const store = yield* InMemoryStoreControl
      const runtime = yield* InMemoryRuntimeControl
      yield* compute.setDeployTime(Duration.seconds(75))

      const everClaimed = new Set<string>()
      const killed = new Set<string>() // removed by the operator (kill, dismiss)
      let failedListings = 0
      let claims = 0

      const pass = Effect.gen(function*() {
        yield* TestClock.adjust(Duration.seconds(30))
        const summary = yield* controller.runPass
        const rows = yield* store.rows
        const services = yield* compute.services
        // Rule 1: a claimed instance is only ever claimed or crashed until an operator kills it.
        for (const id of everClaimed) {
          if (killed.has(id)) continue
          expect(rows.find((r) => r.id === id)?.status, `claimed ${id} on pass ${summary.pass}`).toMatch(/^(claimed|crashed)$/)
        }
        // Rule 5: never more than maxTotal, on the platform or in the table.
        expect(services.length).toBeLessThanOrEqual(spec.maxTotal)
        expect(rows.length).toBeLessThanOrEqual(spec.maxTotal)
        // Rule 2: nothing destructive from a failed listing.
        if (summary.listing === "failed") {
          failedListings++
          expect(summary.planned.Delete + summary.planned.Create + summary.planned.Adopt + summary.planned.MarkCrashed).toBe(0)
        }
        return { rows, services }
      })

      for (let i = 0; i < FAULTY_PASSES; i++) {
        const services = yield* compute.services
        const rows = yield* store.rows
        if (random() < 0.15) yield* compute.failNext(1, new TransientError({ operation: "create", message: "502" }), "create")
        if (random() < 0.05) yield* compute.failNext(1, new RateLimitedError({ operation: "create", message: "429", retryAfter: Option.some(Duration.seconds(1)) }), "create")
        if (random() < 0.1) yield* compute.failNext(1, new TransientError({ operation: "list", message: "page 2 failed" }), "list")
        if (random() < 0.06 && services.length > 0) yield* compute.crash(pick(services)!.info.serviceId)
        if (random() < 0.03 && services.length > 0) yield* compute.vanish(pick(services)!.info.serviceId)
        if (random() < 0.05) yield* runtime.setDefault(random() < 0.5 ? "bound" : "unknown")
        else yield* runtime.setDefault("ok")
        if (random() < 0.3) {
          const claimed = yield* Effect.either(controller.claim({ label: `agent-${i}` }))
          if (claimed._tag === "Right") {
            claims++
            everClaimed.add(claimed.right.instance.id)
          }
        }
        // Users finish with their agents now and then.
        const done = rows.filter((r) => r.status === "claimed")
        if (random() < 0.1 && done.length > 0) {
          const victim = pick(done)!
          killed.add(victim.id)
          yield* Effect.ignore(controller.kill(victim.id))
        }
        yield* pass
      }
      expect(claims).toBeGreaterThan(20)
      expect(failedListings).toBeGreaterThan(10)

      // Faults stop. The operator dismisses crashed instances; the pool settles.
      yield* runtime.setDefault("ok")
      for (const row of (yield* store.rows).filter((r) => r.status === "crashed")) {
        killed.add(row.id)
        yield* controller.dismiss(row.id)
      }
      let last = { rows: yield* store.rows, services: yield* compute.services }
      for (let i = 0; i < SETTLE_PASSES; i++) last = yield* pass

      // Every platform service has a row, and every row a service.
      const rowServiceIds = last.rows.map((r) => r.serviceId).sort()
      expect(last.services.map((s) => s.info.serviceId).sort()).toEqual(rowServiceIds)
      expect(last.rows.every((r) => r.serviceId !== null)).toBe(true)
      // The warm part reached minIdle (the claimed ones keep their room below maxTotal).
      const claimed = last.rows.filter((r) => r.status === "claimed").length
      const idle = last.rows.filter((r) => r.status === "idle").length
      expect(idle).toBeGreaterThanOrEqual(Math.min(spec.minIdle, spec.maxTotal - claimed))
      expect(last.rows.filter((r) => !["idle", "claimed"].includes(r.status))).toEqual([])
    }).pipe(Effect.provide(world(spec, { concurrency: 4 }))), 60_000)
})

/**
 * Process deaths: the controller fiber is interrupted at a random point of a pass (mid-create, mid-delete,
 * mid-claim), and a new incarnation starts on the same store and platform, as a killed server and its restart.
 */
describe("simulation with process deaths", () => {
  const deathSpec = testSpec({ minIdle: 4, maxTotal: 16, createBatch: 4, deleteBatch: 4 })
  const RESTARTS = 40
  /** The provider's request timeout: a request of a dead process lands within it, or never. */
  const REQUEST_TIMEOUT = Duration.seconds(20)

  it.effect.each([3, 11, 29])("seed %i: nothing leaks or doubles at any point, and a restart converges within 3 passes", (seed) =>
    Effect.gen(function*() {
      const random = seededRandom(seed)
      const platform = yield* Layer.build(inMemoryServices({ deployTime: Duration.seconds(40) }).pipe(Layer.map(Context.omit(Incarnations))))
      const registry = yield* makeIncarnationRegistry
      const compute = Context.get(platform, InMemoryComputeControl)
      const store = Context.get(platform, InMemoryStoreControl)
      const credentials = Context.get(platform, InMemoryCredentialsControl)
      const runtime = Context.get(platform, InMemoryRuntimeControl)

      /** One run of the server: its own incarnation and controller, alive until its scope closes. */
      const start = Effect.gen(function*() {
        const scope = yield* Scope.make()
        // Its own connection to the database: once the process is dead, nothing it left running writes again.
        const dead = yield* Ref.make(false)
        const gone = Effect.flatMap(Ref.get(dead), (isDead) =>
          isDead ? Effect.fail(new StoreError({ operation: "store", message: "the process is dead", retryable: false })) : Effect.void)
        const shared = Context.get(platform, InstanceStore)
        const own = Object.fromEntries(
          Object.entries(shared).map(([name, call]) => [name, (...args: Array<never>) => Effect.zipRight(gone, (call as (...a: Array<never>) => Effect.Effect<unknown, StoreError>)(...args))])
        ) as unknown as InstanceStore["Type"]
        const context = yield* Layer.buildWithScope(
          Controller.layer(deathSpec, { background: false, concurrency: 4 }).pipe(
            Layer.provide(LocalIncarnations.layer(registry)),
            Layer.provide(Layer.succeedContext(Context.add(platform, InstanceStore, own)))
          ),
          scope
        )
        return { controller: Context.get(context, Controller), scope, kill: Ref.set(dead, true) }
      })

      // Late writes: a create in flight when its process dies lands up to the request timeout later, as a second
      // service of its row's name when the restart has finished that row meanwhile.
      yield* compute.landLate({ within: REQUEST_TIMEOUT, draw: random })
      /** When the pass that last listed the platform began: a late write that landed since is not yet seen. */
      let lastPassAt = 0

      /** What must hold at every moment, dead process or not. */
      const safe = (when: string) =>
        Effect.gen(function*() {
          const rows = yield* store.rows
          const services = yield* compute.services
          const names = new Set(rows.map((r) => r.name))
          const ids = new Set(rows.map((r) => r.serviceId))
          // No service without a row: a row (the intent) is always written before its service is made.
          for (const s of services) expect(ids.has(s.info.serviceId) || names.has(s.info.name), `${when}: service ${s.info.name} has no row`).toBe(true)
          // Never a duplicate name kept: a second service of a name (a late write) lives only until the next pass
          // that sees it. None in the table, ever.
          const seen = services.filter((s) => s.info.createdAt.getTime() < lastPassAt)
          expect(new Set(seen.map((s) => s.info.name)).size, `${when}: duplicate service outlived a pass`).toBe(seen.length)
          expect(names.size, `${when}: duplicate row`).toBe(rows.length)
          // No credential without its row.
          for (const name of yield* credentials.live) expect(names.has(name), `${when}: credential ${name} has no row`).toBe(true)
          expect(services.length).toBeLessThanOrEqual(deathSpec.maxTotal)
          return { rows, services }
        })

      /** Converged: every intent resolved, services = rows = credentials, the warm part at minIdle. */
      const converged = Effect.gen(function*() {
        const { rows, services } = yield* safe("converged?")
        const live = yield* credentials.live
        const warm = rows.filter((r) => ["creating", "starting", "idle"].includes(r.status)).length
        const bound = rows.filter((r) => r.status === "claimed" || r.status === "crashed").length
        return rows.every((r) => !["creating", "claiming", "deleting"].includes(r.status) && r.serviceId !== null) &&
          services.map((s) => s.info.serviceId).sort().join() === rows.map((r) => r.serviceId).sort().join() &&
          live.join() === rows.map((r) => r.name).sort().join() &&
          warm >= Math.min(deathSpec.minIdle, deathSpec.maxTotal - bound)
      })

      let current = yield* start
      let deaths = 0
      let abandonedClaims = 0
      let removedDuplicates = 0
      for (let round = 0; round < RESTARTS; round++) {
        // Some idle instances are drained, and users are done with some claimed ones: the pass in flight at the
        // death is deleting them.
        if (random() < 0.3) yield* Effect.ignore(current.controller.drain(1))
        const claimed = (yield* store.rows).filter((r) => r.status === "claimed")
        if (random() < 0.5 && claimed.length > 0) yield* Effect.ignore(current.controller.kill(claimed[Math.floor(random() * claimed.length)]!.id))
        // Calls take time, so a death can land between any two steps of an action.
        yield* compute.setLatency(Duration.millis(100))
        yield* store.setLatency(Duration.millis(10))
        yield* credentials.setLatency(Duration.millis(30))
        // A claim whose provision never answers: in flight when the process dies.
        yield* runtime.setDefault(random() < 0.3 ? "hang" : "ok")
        const claim = yield* Effect.fork(current.controller.claim({ label: `agent-${round}` }))
        const pass = yield* Effect.fork(current.controller.runPass)
        const createsBefore = (yield* compute.calls).create ?? 0
        if (random() < 0.4) {
          // Death mid-create: once the platform has a create request (100 ms until it answers), at a random moment of it.
          for (let step = 0; step < 40 && ((yield* compute.calls).create ?? 0) === createsBefore; step++) yield* TestClock.adjust(Duration.millis(25))
          yield* TestClock.adjust(Duration.millis(Math.floor(random() * 5) * 20))
        } else for (let step = Math.floor(random() * 12); step > 0; step--) yield* TestClock.adjust(Duration.millis(25))
        // The process dies: its fibers stop wherever they are, its incarnation is gone.
        // A claim holding an instance settles it before it yields to an interruption: a dead process settles
        // nothing, so nothing waits for it, and its store is gone.
        yield* current.kill
        yield* Fiber.interruptFork(pass)
        yield* Fiber.interruptFork(claim)
        yield* Scope.close(current.scope, Exit.void)
        deaths++
        abandonedClaims += (yield* store.rows).filter((r) => r.status === "claiming").length
        yield* safe(`after death ${deaths}`)

        // The restart, on a healthy platform: it passes at once, while the dead run's late writes are still landing.
        yield* Effect.all([compute.setLatency(Duration.zero), store.setLatency(Duration.zero), credentials.setLatency(Duration.zero), runtime.setDefault("ok")])
        const died = yield* Clock.currentTimeMillis
        current = yield* start
        let passes = 0
        const restartPass = Effect.gen(function*() {
          lastPassAt = yield* Clock.currentTimeMillis
          const summary = yield* current.controller.runPass
          removedDuplicates += summary.planned.RemoveService
          passes++
          yield* safe(`restart ${deaths}, pass ${passes}`)
        })
        yield* restartPass
        // Converged, and stays so once every late write has landed: nothing doubled, nothing stuck.
        while (!(yield* converged) || (yield* Clock.currentTimeMillis) < died + Duration.toMillis(REQUEST_TIMEOUT)) {
          expect(passes, `restart ${deaths} has not converged after 4 passes`).toBeLessThan(4)
          yield* TestClock.adjust(Duration.seconds(30))
          yield* restartPass
        }
        // Claims left mid-way became crashed; the operator dismisses them, and the pool goes on.
        for (const row of (yield* store.rows).filter((r) => r.status === "crashed")) yield* Effect.ignore(current.controller.dismiss(row.id))
        yield* TestClock.adjust(Duration.seconds(30))
        yield* current.controller.runPass
      }
      expect(deaths).toBe(RESTARTS)
      // Deaths landed mid-claim too (the interesting case for rule 9), not only between passes.
      expect(abandonedClaims, "deaths mid-claim").toBeGreaterThan(0)
      // And late writes made duplicates, which the restarts removed.
      expect(removedDuplicates, "duplicates removed").toBeGreaterThan(0)
    }).pipe(Effect.scoped), 120_000)
})

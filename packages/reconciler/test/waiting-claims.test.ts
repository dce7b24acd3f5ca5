/** Claims that wait for an instance: asked-for creates, first come first served, deadlines, callers who leave. */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Ref, Schedule } from "effect"
import { type ClaimProgress, Controller, InstanceStore, newInstance } from "../src/index.js"
import { InMemoryRuntimeControl, InMemoryStoreControl } from "../src/testing/index.js"
import { testSpec, world } from "./support/in-memory-world.js"

const rows = Effect.flatMap(InMemoryStoreControl, (c) => c.rows)
const countOf = (status: string) => Effect.map(rows, (all) => all.filter((r) => r.status === status).length)
/** Two passes: whatever is asked for is created, then marked idle (and handed to whoever waits). */
const createAndReady = Effect.flatMap(Controller, (c) => Effect.repeatN(c.runPass, 1))
const plannedCreates = Effect.flatMap(Controller, (c) => c.preview).pipe(Effect.map((actions) => actions.filter((a) => a._tag === "Create").length))

/** Checks `condition` (test-side only) until it holds, for at most 10 s. */
const eventually = <E, R>(condition: Effect.Effect<boolean, E, R>) =>
  Effect.repeat(condition, { until: (ok) => ok, schedule: Schedule.spaced(Duration.millis(20)) }).pipe(
    Effect.timeoutFail({ duration: Duration.seconds(10), onTimeout: () => new Error("condition still false after 10 s") })
  )

/** A claim that waits up to `waitMs`, recording its progress, forked; returned once it is in line. */
const waitingClaim = (label: string, waitMs: number) =>
  Effect.gen(function*() {
    const controller = yield* Controller
    const progress = yield* Ref.make<ReadonlyArray<ClaimProgress>>([])
    const fiber = yield* Effect.fork(
      controller.claim({ label }, { waitMs, onProgress: (p) => Ref.update(progress, (all) => [...all, p]) })
    )
    yield* eventually(Effect.map(Ref.get(progress), (p) => p.length > 0))
    return { fiber, progress: Ref.get(progress) }
  })

describe("Claims that wait", () => {
  it.live("with autoscaling too: the claim's wait and progress reach it, and it counts as an arrival", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      const claim = yield* waitingClaim("scaled", 20_000)
      expect(yield* claim.progress).toEqual([{ _tag: "Queued", position: 1 }])
      yield* createAndReady
      const result = yield* Fiber.join(claim.fiber)
      expect(result.instance.status).toBe("claimed")
      const sizing = yield* Effect.flatMap(controller.sizing, (s) => s)
      expect(sizing.rateLong).toBeGreaterThan(0)
    }).pipe(Effect.provide(world(testSpec({ minIdle: 0, maxTotal: 3, autoscale: { targetMissRate: 0.01, maxIdle: 3, scaleDownAfterMs: 600_000 } })))))

  it.live("a stop answers the claims waiting in line at once (503), instead of holding the stop until their deadline", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      const claim = yield* waitingClaim("patient", 60_000)
      const started = Date.now()
      yield* controller.stop(Duration.seconds(20))
      const refused = yield* Effect.flip(Fiber.join(claim.fiber))
      expect(refused._tag).toBe("NoIdleInstanceError")
      expect(Date.now() - started).toBeLessThan(5_000)
      expect(yield* countOf("claiming")).toBe(0)
    }).pipe(Effect.provide(world(testSpec({ minIdle: 0, maxTotal: 3 })))))

  it.live("nothing idle: the claim asks for an instance, and gets it as soon as it is ready", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      const claim = yield* waitingClaim("patient", 20_000)
      // Counted like a requested create, though minIdle is 0.
      expect(yield* plannedCreates).toBe(1)
      const created = yield* controller.runPass
      expect(created.planned.Create).toBe(1)
      // Its create in flight counts: no second one.
      expect(yield* plannedCreates).toBe(0)
      yield* controller.runPass // healthy → idle → the waiter takes it
      const result = yield* Fiber.join(claim.fiber)
      expect(result.instance).toMatchObject({ status: "claimed", attributes: { session: `session-${result.instance.id}`, label: "patient" } })
      expect((yield* claim.progress).map((p) => p._tag)).toEqual(["Queued", "Claimed", "Provisioning"])
      expect(yield* claim.progress).toEqual([
        { _tag: "Queued", position: 1 },
        { _tag: "Claimed", instanceId: result.instance.id },
        { _tag: "Provisioning", instanceId: result.instance.id }
      ])
      expect(yield* plannedCreates).toBe(0)
    }).pipe(Effect.provide(world(testSpec({ minIdle: 0, maxTotal: 3 })))))

  it.live("first come first served: waiters are told their place and served in the order they came", () =>
    Effect.gen(function*() {
      const claims = []
      for (const name of ["first", "second", "third"]) {
        const claim = yield* waitingClaim(name, 20_000)
        claims.push(claim)
      }
      expect(yield* Effect.forEach(claims, (c) => c.progress)).toEqual([[{ _tag: "Queued", position: 1 }], [{ _tag: "Queued", position: 2 }], [{ _tag: "Queued", position: 3 }]])
      // The batch allows 2 creates per pass: the first two become ready first.
      yield* createAndReady
      const [first, second, third] = claims as [typeof claims[0], typeof claims[0], typeof claims[0]]
      expect((yield* Fiber.join(first.fiber)).instance.attributes.label).toBe("first")
      expect((yield* Fiber.join(second.fiber)).instance.attributes.label).toBe("second")
      // The third moved up to first place, and is served by the next instance.
      expect((yield* third.progress).at(-1)).toEqual({ _tag: "Queued", position: 1 })
      yield* createAndReady
      expect((yield* Fiber.join(third.fiber)).instance.attributes.label).toBe("third")
    }).pipe(Effect.provide(world(testSpec({ minIdle: 0, maxTotal: 5, createBatch: 2 })))))

  it.live("a waiting newcomer does not jump the line: a row idle when it arrives goes to the claim that came first", () =>
    Effect.gen(function*() {
      const store = yield* InstanceStore
      const early = yield* waitingClaim("early", 20_000)
      // An instance is idle, and nobody has said so yet.
      yield* store.insert(newInstance({ id: "ready", pool: "pool", name: "agent-ready", status: "idle", serviceId: "svc-ready", now: new Date() }))
      const late = yield* waitingClaim("late", 20_000)
      expect((yield* late.progress)[0]).toEqual({ _tag: "Queued", position: 2 })
      expect((yield* Fiber.join(early.fiber)).instance).toMatchObject({ id: "ready", attributes: { label: "early" } })
      yield* Fiber.interrupt(late.fiber)
    }).pipe(Effect.provide(world(testSpec({ minIdle: 0, maxTotal: 5 })))))

  it.live("at the deadline: NoIdleInstanceError, the request for an instance withdrawn, nothing held", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      const started = Date.now()
      const error = yield* Effect.flip(controller.claim({}, { waitMs: 300 }))
      expect(Date.now() - started).toBeGreaterThanOrEqual(290)
      expect(error).toMatchObject({ _tag: "NoIdleInstanceError", message: expect.stringContaining("in the time the claim could wait") })
      expect(yield* plannedCreates).toBe(0)
      expect(yield* rows).toEqual([])
    }).pipe(Effect.provide(world(testSpec({ minIdle: 0, maxTotal: 3 })))))

  it.live("bounded by maxTotal: a full pool creates nothing for a waiter", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      yield* createAndReady
      yield* controller.claim({ label: "holder" })
      const claim = yield* waitingClaim("waiter", 20_000)
      expect(yield* plannedCreates).toBe(0)
      yield* Fiber.interrupt(claim.fiber)
    }).pipe(Effect.provide(world(testSpec({ minIdle: 1, maxTotal: 1 })))))

  it.live("a waiter that goes away takes nothing with it: its place, its request and the instance stay", () =>
    Effect.gen(function*() {
      const gone = yield* waitingClaim("gone", 20_000)
      const stays = yield* waitingClaim("stays", 20_000)
      expect(yield* plannedCreates).toBe(2)
      yield* Fiber.interrupt(gone.fiber)
      // The one left moved up, and only its instance is asked for.
      yield* eventually(Effect.map(stays.progress, (p) => p.at(-1)?._tag === "Queued" && (p.at(-1) as { position: number }).position === 1))
      expect(yield* plannedCreates).toBe(1)
      yield* createAndReady
      expect((yield* Fiber.join(stays.fiber)).instance.attributes.label).toBe("stays")
      expect(yield* countOf("claiming")).toBe(0)
      expect(yield* countOf("claimed")).toBe(1)
    }).pipe(Effect.provide(world(testSpec({ minIdle: 0, maxTotal: 3 })))))

  it.live("a caller who goes away while its instance is provisioned leaves it settled, never stuck in claiming", () =>
    Effect.gen(function*() {
      yield* createAndReady
      yield* Effect.flatMap(InMemoryRuntimeControl, (c) => c.setDefault("hang"))
      const claim = yield* waitingClaim("leaves", 20_000).pipe(Effect.map((c) => c.fiber))
      // It holds the instance and waits for the runtime, which never answers.
      yield* eventually(Effect.map(countOf("claiming"), (n) => n === 1))
      yield* Fiber.interrupt(claim)
      // The provision's own timeout decided: outcome unknown, so crashed (never idle, never left claiming).
      expect((yield* rows).map((r) => [r.status, r.lastError?.includes("no answer within") ?? false])).toEqual([["crashed", true]])
    }).pipe(Effect.provide(world(testSpec({ minIdle: 1, maxTotal: 3 }), { provisionTimeout: Duration.millis(300) }))))
})

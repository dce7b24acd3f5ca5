/**
 * Autoscaling through the real Controller on the TestClock: a burst raises the warm target at once, ready
 * times are measured, and after scaleDownAfterMs of quiet the oldest idle instances are drained down to the
 * new target — never a claimed one, never below minIdle.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer, Option, Stream, TestClock } from "effect"
import { Controller, Leadership, warmStatuses } from "../src/index.js"
import { InMemoryComputeControl, inMemoryServices, InMemoryStoreControl } from "../src/testing/index.js"
import { testSpec, world } from "./support/in-memory-world.js"

const spec = testSpec({
  minIdle: 2,
  maxTotal: 100,
  createBatch: 50,
  deleteBatch: 50,
  autoscale: { targetMissRate: 0.01, maxIdle: 40, scaleDownAfterMs: 600_000 }
})

const rows = Effect.flatMap(InMemoryStoreControl, (c) => c.rows)
const count = (status: string) => Effect.map(rows, (all) => all.filter((r) => r.status === status).length)
const warm = Effect.map(rows, (all) => all.filter((r) => warmStatuses.includes(r.status)).length)
const decision = Effect.flatMap(Controller, (c) => Effect.map(c.sizing, Option.getOrThrow))

/** `seconds` of time in passes every 30 s. */
const passFor = (seconds: number) =>
  Effect.flatMap(Controller, (controller) =>
    Effect.forEach(Array.from({ length: Math.ceil(seconds / 30) }), () =>
      TestClock.adjust(Duration.seconds(30)).pipe(Effect.zipRight(controller.runPass)), { discard: true }))

describe("Controller with autoscale", () => {
  it.effect("scales up at once in a burst, measures ready times, and drains the oldest idle only after the quiet period", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      yield* Effect.flatMap(InMemoryComputeControl, (c) => c.setDeployTime(Duration.seconds(60)))
      yield* controller.runPass
      expect(yield* decision).toMatchObject({ rate: 0, target: 2, readySamples: 0 })
      yield* passFor(120)
      expect(yield* count("idle")).toBe(2)
      expect((yield* decision).readySamples).toBe(2)

      // A burst: 20 claims in 40 s, most of which find nothing idle.
      const claimed: Array<string> = []
      for (let i = 0; i < 20; i++) {
        yield* TestClock.adjust(Duration.seconds(2))
        const result = yield* Effect.either(controller.claim({ label: `a${i}` }))
        if (result._tag === "Right") claimed.push(result.right.instance.id)
      }
      const burst = yield* controller.runPass
      const up = yield* decision
      expect(up.burst).toBe(true)
      expect(up.rate).toBeCloseTo(20 / 60, 5)
      expect(up.target).toBeGreaterThan(20)
      expect(up.target).toBe(up.desired)
      expect(claimed).toHaveLength(2)
      expect(burst.planned.Create).toBe(up.target) // up at once: the whole gap in one pass
      expect(yield* warm).toBe(up.target)

      // The new instances become idle; their ready times (60–90 s with 30 s passes) are measured.
      yield* passFor(120)
      expect(yield* count("idle")).toBe(up.target)
      const measured = yield* decision
      expect(measured.readyMs).toBeGreaterThanOrEqual(60_000)
      expect(measured.readyMs).toBeLessThanOrEqual(120_000)

      // Quiet: demand falls, but the target holds for scaleDownAfterMs after the burst…
      yield* passFor(6 * 60)
      expect((yield* decision).desired).toBeLessThan(up.target)
      expect(yield* count("idle")).toBe((yield* decision).target)
      expect((yield* decision).target).toBeGreaterThanOrEqual(up.target)
      // …then falls, draining the oldest idle instances; the claimed ones stay claimed.
      const idleBefore = (yield* rows).filter((r) => r.status === "idle").sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())
      yield* passFor(20 * 60)
      const after = yield* decision
      expect(after.target).toBeLessThan(up.target)
      expect(after.target).toBeGreaterThanOrEqual(spec.minIdle)
      expect(yield* warm).toBe(after.target)
      const idleAfter = new Set((yield* rows).filter((r) => r.status === "idle").map((r) => r.id))
      const drained = idleBefore.filter((r) => !idleAfter.has(r.id))
      const kept = idleBefore.filter((r) => idleAfter.has(r.id))
      expect(drained.length).toBeGreaterThan(0)
      for (const k of kept) for (const d of drained) expect(k.createdAt.getTime()).toBeGreaterThanOrEqual(d.createdAt.getTime())
      const now = yield* rows
      for (const id of claimed) expect(now.find((r) => r.id === id)?.status).toBe("claimed")
    }).pipe(Effect.provide(world(spec))))

  it.effect("a scale-up larger than a batch goes on pass after pass, without waiting for the tick", () =>
    Effect.gen(function*() {
      // The clock never moves: only triggers run passes. 12 to create at 5 a pass.
      const passes = Effect.flatMap(Controller, (c) => Effect.map(c.lastPass, Option.match({ onNone: () => 0, onSome: (p) => p.pass })))
      for (let i = 0; i < 1_000 && (yield* passes) < 3; i++) yield* Effect.yieldNow()
      expect(yield* Effect.map(rows, (all) => all.length)).toBe(12)
      // The third pass filled no whole batch: no fourth one until something triggers it.
      for (let i = 0; i < 200; i++) yield* Effect.yieldNow()
      expect(yield* passes).toBe(3)
    }).pipe(Effect.provide(world(testSpec({ minIdle: 12, maxTotal: 20, createBatch: 5 }), { background: true, tickInterval: Duration.hours(1) }))))

  it.effect("a replica that stops leading after a full batch does not keep triggering passes", () => {
    // Leads the first thing it runs (the first pass: the clock never moves, so no readiness round runs), then stands by.
    let runs = 0
    const firstPassOnly = Layer.succeed(Leadership, {
      whileLeader: (effect) => Effect.suspend(() => (runs++ === 0 ? Effect.map(effect, Option.some) : Effect.succeed(Option.none<never>()))),
      leading: Stream.make(true)
    })
    const layer = Controller.layer(testSpec({ minIdle: 12, maxTotal: 20, createBatch: 5 }), { tickInterval: Duration.hours(1) }).pipe(
      Layer.provide(firstPassOnly),
      Layer.provideMerge(inMemoryServices())
    )
    return Effect.gen(function*() {
      const passes = Effect.flatMap(Controller, (c) => Effect.map(c.lastPass, Option.match({ onNone: () => 0, onSome: (p) => p.pass })))
      for (let i = 0; i < 1_000 && (yield* passes) < 2; i++) yield* Effect.yieldNow()
      for (let i = 0; i < 500; i++) yield* Effect.yieldNow()
      expect(yield* passes).toBe(2)
      expect(yield* Effect.map(rows, (all) => all.length)).toBe(5)
    }).pipe(Effect.provide(layer))
  })
})

/** Rule 12: an action that fails the same way every pass backs off, is reported as stuck, and the plan ends it. */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Metric, type MetricState, TestClock } from "effect"
import { ConflictError, Controller, InstanceStore, ReconcilerMetrics, StoreError } from "../src/index.js"
import { InMemoryComputeControl, InMemoryStoreControl } from "../src/testing/index.js"
import { testSpec, world } from "./support/in-memory-world.js"

const stuckGauge = (action: string, reason: string) =>
  Metric.value(ReconcilerMetrics.stuckActions.pipe(Metric.tagged("pool", "pool"), Metric.tagged("action", action), Metric.tagged("reason", reason))).pipe(
    Effect.map((state: MetricState.MetricState.Gauge<number>) => state.value)
  )

describe("actions failing pass after pass (rule 12)", () => {
  it.effect("a delete refused every time backs off (5 s, 10 s, …), shows as stuck with its reason, and ends when it succeeds", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      const compute = yield* InMemoryComputeControl
      const store = yield* InMemoryStoreControl
      yield* Effect.repeatN(controller.runPass, 1)
      const victim = (yield* store.rows)[0]!
      yield* controller.kill(victim.id)
      const refused = new ConflictError({ operation: "destroy", message: "409 service is locked" })
      // Refused three times; the fourth try goes through.
      yield* compute.failNext(3, refused, "destroy")
      const destroys = Effect.map(compute.calls, (c) => c.destroy ?? 0)

      expect((yield* controller.runPass).failed.Delete).toBe(1)
      expect(yield* destroys).toBe(1)
      // Backing off: the passes meanwhile (every claim runs one) leave it alone.
      expect((yield* controller.runPass).planned.Delete).toBe(0)
      yield* TestClock.adjust(Duration.seconds(4))
      expect((yield* controller.runPass).planned.Delete).toBe(0)
      expect(yield* destroys).toBe(1)
      yield* TestClock.adjust(Duration.seconds(1))
      expect((yield* controller.runPass).failed.Delete).toBe(1)
      expect(yield* controller.stuck).toEqual([])
      // The second back-off is twice as long.
      yield* TestClock.adjust(Duration.seconds(9))
      expect((yield* controller.runPass).planned.Delete).toBe(0)
      yield* TestClock.adjust(Duration.seconds(1))
      expect((yield* controller.runPass).failed.Delete).toBe(1)
      expect(yield* destroys).toBe(3)

      const [stuck] = yield* controller.stuck
      expect(stuck).toMatchObject({ key: `Delete:${victim.id}`, kind: "Delete", failures: 3, errorKind: "ConflictError" })
      expect(stuck!.reason).toContain("409 service is locked")
      expect(stuck!.retryAt.getTime() - (yield* Clock.currentTimeMillis)).toBe(20_000)
      expect(yield* stuckGauge("Delete", "ConflictError")).toBe(1)

      // The platform accepts it again: the try after the back-off succeeds, and nothing is stuck any more.
      yield* TestClock.adjust(Duration.seconds(20))
      expect((yield* controller.runPass).failed.Delete).toBe(0)
      expect((yield* store.rows).some((r) => r.id === victim.id)).toBe(false)
      expect(yield* controller.stuck).toEqual([])
      expect(yield* stuckGauge("Delete", "ConflictError")).toBe(0)
    }).pipe(Effect.provide(world(testSpec()))))

  it.effect("a service whose adoption keeps failing is removed after the third failure, not retried forever", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      const compute = yield* InMemoryComputeControl
      const store = yield* InMemoryStoreControl
      yield* Effect.repeatN(controller.runPass, 1)
      // A service of the pool without a row (made by hand, or the row was lost), old enough to be adopted.
      const stray = (yield* store.rows)[0]!
      yield* Effect.flatMap(InstanceStore, (rows) => rows.remove(stray.id, ["idle"]))
      yield* TestClock.adjust(Duration.minutes(2))
      yield* store.failNext(3, new StoreError({ operation: "insert", message: "duplicate key", retryable: false }), "insert")
      const delays = [0, 5, 10]
      for (const delay of delays) {
        yield* TestClock.adjust(Duration.seconds(delay))
        expect((yield* controller.runPass).failed.Adopt).toBe(1)
      }
      expect((yield* controller.stuck).map((s) => s.kind)).toEqual(["Adopt"])
      yield* TestClock.adjust(Duration.seconds(20))
      const ended = yield* controller.runPass
      expect(ended.planned.Adopt).toBe(0)
      expect(ended.planned.RemoveService).toBe(1)
      expect((yield* compute.services).some((s) => s.info.serviceId === stray.serviceId)).toBe(false)
      // Forgotten once the plan no longer proposes it; the pool refills as usual.
      yield* TestClock.adjust(Duration.minutes(10))
      yield* controller.runPass
      expect(yield* controller.stuck).toEqual([])
      expect(yield* stuckGauge("Adopt", "StoreError")).toBe(0)
    }).pipe(Effect.provide(world(testSpec()))))
})

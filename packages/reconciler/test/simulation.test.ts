/**
 * A deterministic simulation: the real Controller against a simulated platform with create latency,
 * random create failures, crashes, vanishing services, failed listings and claims arriving, for
 * hundreds of passes on the TestClock. Invariants are checked after every pass; convergence at the end.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Option, TestClock } from "effect"
import { Controller, RateLimitedError, TransientError } from "../src/index.js"
import { InMemoryComputeControl, InMemoryRuntimeControl, InMemoryStoreControl, seededRandom } from "../src/testing/index.js"
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
          const claimed = yield* Effect.either(controller.claim({ agentName: `agent-${i}`, instructions: "help" }))
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

/**
 * Rule 10 with the real Controller on the in-memory platform: a pool lives through claims, failed creates,
 * failed listings and crashes; then it restarts on a new template. Claimed instances keep their template;
 * every unclaimed one moves onto the new template, and idle never drops below minIdle on the way.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, TestClock } from "effect"
import { Controller, currentTemplate, TransientError } from "../src/index.js"
import { InMemoryComputeControl, InMemoryStoreControl } from "../src/testing/index.js"
import { testSpec, world } from "./support/in-memory-world.js"

const prng = (seed: number) => () => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
}

const v1 = testSpec({ minIdle: 4, maxTotal: 16, createBatch: 3, deleteBatch: 4, maxSurge: 2 })
const v2 = testSpec({ ...v1, template: { image: "runtime:v2", env: { SHARED: "2" } } })

describe("rollout simulation", () => {
  it.effect.each([3, 11, 29])("seed %i: after a faulty history, a new template rolls surge-first; claimed instances keep theirs", (seed) =>
    Effect.gen(function*() {
      const random = prng(seed)
      const compute = yield* InMemoryComputeControl
      const store = yield* InMemoryStoreControl
      yield* compute.setDeployTime(Duration.seconds(45))
      const tick = (controller: Controller["Type"]) => TestClock.adjust(Duration.seconds(30)).pipe(Effect.zipRight(controller.runPass))
      const old = yield* Controller
      let claims = 0
      for (let i = 0; i < 30; i++) {
        if (random() < 0.3) yield* compute.failNext(1, new TransientError({ operation: "create", message: "502" }), "create")
        if (random() < 0.15) yield* compute.failNext(1, new TransientError({ operation: "list", message: "page 2 failed" }), "list")
        const services = yield* compute.services
        if (random() < 0.1 && services.length > 0) yield* compute.crash(services[Math.floor(random() * services.length)]!.info.serviceId)
        if (random() < 0.25) {
          const claim = yield* Effect.either(old.claim({ label: `a${i}` }))
          if (claim._tag === "Right") claims++
        }
        yield* tick(old)
      }
      for (const row of (yield* store.rows).filter((r) => r.status === "crashed")) yield* old.dismiss(row.id)
      for (let i = 0; i < 40; i++) yield* tick(old)
      expect((yield* store.rows).filter((r) => r.status === "idle").length).toBeGreaterThanOrEqual(v1.minIdle)

      // A restart on the new template: a new controller over the same platform and table.
      yield* Effect.scoped(Effect.gen(function*() {
        let rows = yield* store.rows
        const claimed = new Map(rows.filter((r) => r.status === "claimed").map((r) => [r.id, r.templateHash]))
        expect(claimed.size).toBeGreaterThan(0)
        const controller = yield* Controller.make(v2, { background: false })
        for (let i = 0; i < 40; i++) {
          yield* tick(controller)
          rows = yield* store.rows
          expect(rows.filter((r) => r.status === "idle").length, `pass ${i}`).toBeGreaterThanOrEqual(v2.minIdle)
          expect(rows.length).toBeLessThanOrEqual(v2.maxTotal)
          for (const [id, before] of claimed) expect(rows.find((r) => r.id === id)).toMatchObject({ status: "claimed", templateHash: before })
        }
        const unclaimed = rows.filter((r) => r.status !== "claimed")
        expect(unclaimed.length).toBeGreaterThanOrEqual(v2.minIdle)
        expect(unclaimed.every((r) => r.templateHash === currentTemplate(v2).hash && r.status === "idle")).toBe(true)
        const images = new Map((yield* compute.services).map((s) => [s.info.serviceId, s.info.image]))
        expect(unclaimed.map((r) => images.get(r.serviceId!))).toEqual(unclaimed.map(() => "runtime:v2"))
      }))
      expect(claims).toBeGreaterThan(0)
    }).pipe(Effect.provide(world(v1))), 60_000)
})

/** A pool changed while it runs (`updateSpec`), and instances it must never touch (`protectedInstances`). */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Controller, currentTemplate, InstanceStore, newInstance } from "../src/index.js"
import { InMemoryComputeControl, InMemoryStoreControl } from "../src/testing/index.js"
import { testSpec, world } from "./support/in-memory-world.js"

const rows = Effect.flatMap(InMemoryStoreControl, (c) => c.rows)

describe("Controller, live changes", () => {
  it.effect("a higher minIdle fills at the next pass; a new image makes new instances from it and rolls the old ones out", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      yield* Effect.repeatN(controller.runPass, 1)
      expect((yield* rows).filter((r) => r.status === "idle")).toHaveLength(2)
      const next = testSpec({ minIdle: 3, template: { image: "runtime:next", env: { SHARED: "2" } } })
      yield* controller.updateSpec(next)
      expect(controller.spec).toBe(next)
      yield* Effect.repeatN(controller.runPass, 8)
      const after = yield* rows
      expect(after.map((r) => [r.status, r.runtimeImage, r.templateHash])).toEqual(Array(3).fill(["idle", "runtime:next", currentTemplate(next).hash]))
      // Made from the new template: its image and env reached the platform.
      const services = yield* Effect.flatMap(InMemoryComputeControl, (c) => c.services)
      expect(services.filter((s) => after.some((r) => r.serviceId === s.info.serviceId)).map((s) => [s.info.image, s.env.SHARED])).toEqual(Array(3).fill(["runtime:next", "2"]))
    }).pipe(Effect.provide(world(testSpec()))))

  it.effect("the name and prefix cannot change: SpecChangeError, the spec kept", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      const before = controller.spec
      for (const other of [testSpec({ name: "other" }), testSpec({ namePrefix: "other-" })]) {
        const error = yield* Effect.flip(controller.updateSpec(other))
        expect(error._tag).toBe("SpecChangeError")
      }
      expect(controller.spec).toBe(before)
    }).pipe(Effect.provide(world(testSpec()))))

  it.effect("a protected instance is never claimed, drained, killed or deleted as an orphan, and the pool fills beside it", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      const store = yield* InstanceStore
      // Idle, an hour old, its service unknown to the platform: an orphan the plan would delete, were it not protected.
      yield* store.insert(newInstance({ id: "kept", pool: "pool", name: "agent-kept", status: "idle", now: new Date(Date.now() - 3_600_000), serviceId: "svc-kept" }))
      yield* Effect.repeatN(controller.runPass, 2)
      const idle = (yield* rows).filter((r) => r.status === "idle").map((r) => r.id)
      expect(idle).toHaveLength(3)
      expect(idle).toContain("kept")
      expect((yield* Effect.flip(controller.kill("kept")))._tag).toBe("ProtectedInstanceError")
      expect((yield* Effect.flip(controller.dismiss("kept")))._tag).toBe("ProtectedInstanceError")
      const claimed = yield* Effect.forEach([1, 2], () => Effect.map(controller.claim({ label: "x" }), (r) => r.instance.id))
      expect(claimed).not.toContain("kept")
      expect((yield* Effect.flip(controller.claim({ label: "x" })))._tag).toBe("NoIdleInstanceError")
      expect(yield* controller.drain(10)).toEqual([])
      yield* controller.runPass
      expect((yield* rows).find((r) => r.id === "kept")?.status).toBe("idle")
    }).pipe(Effect.provide(world(testSpec(), { protectedInstances: ["kept"] }))))
})

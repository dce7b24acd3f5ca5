import { describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Fiber, Layer, Option, Ref, Schema, TestClock } from "effect"
import { ComputeProvider, Controller, InstanceRuntime, RateLimitedError, type Runtime, StoreError, TransientError } from "../src/index.js"
import {
  InMemoryComputeControl,
  InMemoryCredentialsControl,
  InMemoryHealthControl,
  InMemoryRuntime,
  InMemoryRuntimeControl,
  inMemoryServices,
  InMemoryStoreControl
} from "../src/testing/index.js"
import { testSpec, world } from "./support/in-memory-world.js"

const rows = Effect.flatMap(InMemoryStoreControl, (c) => c.rows)
const statuses = Effect.map(rows, (all) => all.map((r) => r.status).sort())

/** Passes until the pool is filled: creates, then health marks them idle. */
const fill = Effect.flatMap(Controller, (c) => Effect.repeatN(c.runPass, 1))

describe("Controller", () => {
  it.effect("fills the pool to minIdle: create, then idle once healthy", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      const first = yield* controller.runPass
      expect(first.planned.Create).toBe(2)
      expect(first.applied).toBe(true)
      expect(yield* statuses).toEqual(["starting", "starting"])
      const second = yield* controller.runPass
      expect(second.planned.MarkIdle).toBe(2)
      expect(yield* statuses).toEqual(["idle", "idle"])
      // The services were made with the template's env plus the issued credentials.
      const made = yield* Effect.flatMap(InMemoryComputeControl, (c) => c.services)
      expect(made.map((s) => Object.keys(s.env).sort())).toEqual([["INSTANCE_SECRET", "SHARED"], ["INSTANCE_SECRET", "SHARED"]])
      expect((yield* rows).every((r) => r.handles.inMemoryKey === `key-${r.name}`)).toBe(true)
      expect((yield* controller.runPass).planned).toMatchObject({ Create: 0, Delete: 0, MarkIdle: 0 })
    }).pipe(Effect.provide(world(testSpec()))))

  it.effect("the version a runtime reports when it turns ready is kept on its row, beside what a claim records", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      const health = yield* InMemoryHealthControl
      yield* controller.runPass
      const [first, second] = yield* rows
      yield* health.set(first!.id, { health: "ready", runtimeVersion: "2.1.0" })
      yield* health.set(second!.id, { health: "not-ready", runtimeVersion: "2.1.0" })
      expect((yield* controller.runPass).planned.MarkIdle).toBe(1)
      const after = yield* rows
      expect(after.map((r) => [r.status, r.attributes.runtimeVersion ?? null])).toEqual([["idle", "2.1.0"], ["starting", null]])
      // A runtime that says no version leaves none.
      yield* health.set(second!.id, "ready")
      yield* controller.runPass
      expect((yield* rows).map((r) => [r.status, r.attributes.runtimeVersion ?? null])).toEqual([["idle", "2.1.0"], ["idle", null]])
      const claimed = yield* controller.claim({ label: "tokyo" })
      expect((yield* rows).find((r) => r.id === claimed.instance.id)?.attributes).toMatchObject({ label: "tokyo" })
      expect((yield* rows).find((r) => r.id === first!.id)?.attributes.runtimeVersion).toBe("2.1.0")
    }).pipe(Effect.provide(world(testSpec()))))

  it.effect("claims the oldest idle instance, records what the runtime says of the claim, and backfills", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      yield* fill
      const oldest = (yield* rows)[0]!
      const result = yield* controller.claim({ label: "tokyo" })
      expect(result.result).toEqual({ session: `session-${oldest.id}`, label: "tokyo" })
      expect(result.instance).toMatchObject({ id: oldest.id, status: "claimed", attributes: { session: `session-${oldest.id}`, label: "tokyo" } })
      expect(result.instance.claimedAt).not.toBeNull()
      expect((yield* rows).find((r) => r.id === oldest.id)?.attributes).toEqual({ session: `session-${oldest.id}`, label: "tokyo" })
      const next = yield* controller.runPass
      expect(next.planned.Create).toBe(1)
    }).pipe(Effect.provide(world(testSpec()))))

  it.effect("a burst of claims: each gets its own instance, and they share the store's statements", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      yield* Effect.repeatN(controller.runPass, 4)
      expect((yield* rows).filter((r) => r.status === "idle")).toHaveLength(8)
      const callsBefore = yield* Effect.flatMap(InMemoryStoreControl, (c) => c.calls)
      const results = yield* Effect.forEach(
        Array.from({ length: 8 }, (_, i) => `agent-${i}`),
        (label) => controller.claim({ label }),
        { concurrency: "unbounded" }
      )
      expect(new Set(results.map((r) => r.instance.id)).size).toBe(8)
      expect(results.map((r) => [r.instance.attributes.label, r.instance.status])).toEqual(
        Array.from({ length: 8 }, (_, i) => [`agent-${i}`, "claimed"])
      )
      expect((yield* rows).filter((r) => r.status === "claimed").map((r) => r.attributes.label).sort()).toEqual(
        Array.from({ length: 8 }, (_, i) => `agent-${i}`)
      )
      const calls = yield* Effect.flatMap(InMemoryStoreControl, (c) => c.calls)
      const used = (operation: string) => (calls[operation] ?? 0) - (callsBefore[operation] ?? 0)
      expect(used("claimIdle")).toBeLessThan(8)
      expect(used("transitionMany")).toBeLessThan(8)
      expect(used("transition")).toBe(0)
    }).pipe(Effect.provide(world(testSpec({ minIdle: 8, maxTotal: 20 })))))

  it.effect("an instance already bound (409) becomes crashed and the claim moves on", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      yield* fill
      const [first, second] = yield* rows
      yield* Effect.flatMap(InMemoryRuntimeControl, (c) => c.set(first!.id, "bound"))
      const result = yield* controller.claim({ label: "a" })
      expect(result.instance.id).toBe(second!.id)
      const after = yield* rows
      expect(after.find((r) => r.id === first!.id)).toMatchObject({ status: "crashed" })
      expect(after.find((r) => r.id === first!.id)!.lastError).toContain("AlreadyBoundError")
    }).pipe(Effect.provide(world(testSpec()))))

  it.live("an unknown outcome (5xx) is never returned to idle; all attempts failing is a ClaimFailedError", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      yield* fill
      yield* Effect.flatMap(InMemoryRuntimeControl, (c) => c.setDefault("unknown"))
      const exit = yield* Effect.exit(controller.claim({ label: "a" }))
      expect(Exit.isFailure(exit) && Exit.causeOption(exit).pipe(Option.map(String), Option.getOrElse(() => ""))).toContain("provisioning failed on every attempt")
      expect(yield* statuses).toEqual(["crashed", "crashed"])
    }).pipe(Effect.provide(world(testSpec()))))

  it.live("a provision that hangs ends the claim at its timeout: that instance crashed, no other one tried", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      yield* fill
      yield* Effect.flatMap(InMemoryRuntimeControl, (c) => c.setDefault("hang"))
      const started = Date.now()
      const error = yield* Effect.flip(controller.claim({ label: "a" }))
      expect(error._tag).toBe("ClaimFailedError")
      expect(error.message).toContain("no answer within")
      expect(Date.now() - started).toBeLessThan(1_000)
      expect([...(yield* statuses)].sort()).toEqual(["crashed", "idle"])
    }).pipe(Effect.provide(world(testSpec(), { provisionTimeout: Duration.millis(50) }))))

  it.effect("a claim the runtime's schema refuses takes nothing and says why", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      yield* fill
      const error = yield* Effect.flip(controller.claim({ label: 42 }))
      expect(error._tag).toBe("InvalidClaimError")
      expect(error.message).toContain("label")
      expect(yield* statuses).toEqual(["idle", "idle"])
    }).pipe(Effect.provide(world(testSpec()))))

  it.effect("a typed claim whose schema transforms (a Date) is checked as it is, not decoded again", () =>
    Effect.scoped(Effect.gen(function*() {
      const Booking = Schema.Struct({ until: Schema.Date, seats: Schema.optionalWith(Schema.Int, { default: () => 1 }) })
      type Booking = typeof Booking.Type
      const runtime = InMemoryRuntime.make({
        request: Booking,
        answer: (_, request: Booking) => ({ until: request.until, seats: request.seats }),
        attributes: (request) => ({ until: request.until.toISOString() })
      })
      const services = inMemoryServices({}, undefined, runtime)
      // Typed by the runtime it is given: `claim` takes a Booking and answers one.
      const controller = yield* Effect.flatMap(InstanceRuntime, (booking: Runtime<Booking, Booking>) =>
        Controller.makeFor(testSpec(), booking, { background: false })).pipe(Effect.provide(services))
      yield* Effect.repeatN(controller.runPass, 1)
      const until = new Date(Date.UTC(2026, 11, 24))
      const claimed = yield* controller.claim({ until, seats: 2 })
      expect(claimed.result).toEqual({ until, seats: 2 })
      expect(claimed.instance.attributes).toEqual({ until: until.toISOString() })
      const refused = yield* Effect.flip(controller.claim({ until: "tomorrow" } as never))
      expect(refused._tag).toBe("InvalidClaimError")
    })))

  it.effect("a rejected request leaves the instance idle and fails at once", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      yield* fill
      yield* Effect.flatMap(InMemoryRuntimeControl, (c) => c.setDefault("rejected"))
      const error = yield* Effect.flip(controller.claim({ label: "a" }))
      expect(error._tag).toBe("ProvisionRejectedError")
      expect(yield* statuses).toEqual(["idle", "idle"])
    }).pipe(Effect.provide(world(testSpec()))))

  it.effect("no idle instance is a NoIdleInstanceError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.flatMap(Controller, (c) => c.claim({ label: "a" })))
      expect(error._tag).toBe("NoIdleInstanceError")
    }).pipe(Effect.provide(world(testSpec()))))

  it.effect("drain removes idle instances only, never a claimed one, and releases their credentials", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      yield* fill
      const claimed = yield* controller.claim({ label: "a" })
      const drained = yield* controller.drain(10)
      expect(drained).toHaveLength(1)
      expect(drained).not.toContain(claimed.instance.id)
      yield* controller.runPass
      const left = yield* rows
      expect(left.map((r) => r.id)).toContain(claimed.instance.id)
      expect(left.some((r) => r.id === drained[0])).toBe(false)
      const live = yield* Effect.flatMap(InMemoryCredentialsControl, (c) => c.live)
      expect(live).not.toContain(`agent-${drained[0]}`)
    }).pipe(Effect.provide(world(testSpec({ minIdle: 2 })))))

  it.effect("kill removes a claimed instance; dismiss only takes crashed ones; unknown ids are NotFound", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      yield* fill
      const claimed = yield* controller.claim({ label: "a" })
      expect((yield* Effect.flip(controller.dismiss(claimed.instance.id)))._tag).toBe("StaleStatusError")
      expect((yield* Effect.flip(controller.kill("nope")))._tag).toBe("NotFoundError")
      yield* controller.kill(claimed.instance.id)
      yield* controller.runPass
      const services = yield* Effect.flatMap(InMemoryComputeControl, (c) => c.services)
      expect(services.map((s) => s.info.serviceId)).not.toContain(claimed.instance.serviceId)
      expect((yield* rows).map((r) => r.id)).not.toContain(claimed.instance.id)
    }).pipe(Effect.provide(world(testSpec()))))

  it.effect("a failed create is counted, backs off to one per pass, and is retried by a later pass", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      const limited = new RateLimitedError({ operation: "create", message: "429", retryAfter: Option.none() })
      yield* Effect.flatMap(InMemoryComputeControl, (c) => c.failNext(2, limited, "create"))
      const first = yield* controller.runPass
      expect(first.failed.Create).toBe(2)
      expect(first.errors.join()).toContain("RateLimitedError")
      // Nothing half-made is left: rows and credentials of the failed creates are gone.
      expect(yield* rows).toEqual([])
      expect(yield* Effect.flatMap(InMemoryCredentialsControl, (c) => c.live)).toEqual([])
      const second = yield* controller.runPass
      expect(second.planned.Create).toBe(1) // slow start
      const third = yield* controller.runPass
      expect(third.planned.Create).toBe(1)
      expect((yield* statuses).filter((s) => s !== "idle")).toEqual(["starting"])
    }).pipe(Effect.provide(world(testSpec({ createBatch: 4 })))))

  it.effect("a create with an unknown outcome keeps its intent; the plan finishes it when the service exists", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      const compute = yield* InMemoryComputeControl
      yield* compute.failNext(1, new TransientError({ operation: "create", message: "504 gateway timeout" }), "create")
      yield* controller.runPass
      const [pending] = (yield* rows).filter((r) => r.status === "creating")
      expect(pending!.lastError).toContain("504")
      // The platform had in fact made it (the answer was lost).
      const provider = yield* ComputeProvider
      yield* provider.create({ name: pending!.name, image: "runtime:latest", env: {} })
      yield* TestClock.adjust(Duration.minutes(6))
      const later = yield* controller.runPass
      expect(later.planned.RecordService).toBe(1)
      const recorded = (yield* rows).find((r) => r.id === pending!.id)!
      expect(recorded.status).not.toBe("creating")
      expect(recorded.serviceId).not.toBeNull()
      // Exactly one service per row: nothing was created twice.
      expect((yield* compute.services).length).toBe((yield* rows).length)
    }).pipe(Effect.provide(world(testSpec({ minIdle: 1 })))))

  it.effect("a create whose call failed with an unknown outcome and made nothing is finished: one service, one credential", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      yield* Effect.flatMap(InMemoryComputeControl, (c) => c.failNext(1, new TransientError({ operation: "create", message: "socket hang up" }), "create"))
      yield* controller.runPass
      const [pending] = (yield* rows).filter((r) => r.status === "creating")
      // The call is no longer under way: the next pass finishes it (a late landing of the first call would be a
      // duplicate, removed), instead of waiting for createTimeout.
      const later = yield* controller.runPass
      expect(later.planned.FinishCreate).toBe(1)
      const finished = (yield* rows).find((r) => r.id === pending!.id)!
      expect(finished.status).not.toBe("creating")
      const services = yield* Effect.flatMap(InMemoryComputeControl, (c) => c.services)
      expect(services.filter((s) => s.info.name === pending!.name)).toHaveLength(1)
      expect(yield* Effect.flatMap(InMemoryCredentialsControl, (c) => c.live)).toEqual((yield* rows).map((r) => r.name).sort())
    }).pipe(Effect.provide(world(testSpec({ minIdle: 1 })))))

  it.effect("a failed listing destroys and creates nothing, and the summary says so", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      yield* fill
      yield* Effect.flatMap(InMemoryComputeControl, (c) => c.failNext(1, new TransientError({ operation: "list", message: "page 2: 500" }), "list"))
      const summary = yield* controller.runPass
      expect(summary.listing).toBe("failed")
      expect(summary.planned.Delete + summary.planned.Create).toBe(0)
      expect(yield* statuses).toEqual(["idle", "idle"])
    }).pipe(Effect.provide(world(testSpec()))))

  it.effect("a store failure fails the pass, not the loop", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      const store = yield* InMemoryStoreControl
      yield* store.failNext(1, new StoreError({ operation: "list", message: "connection reset", retryable: true }), "list")
      const failed = yield* controller.runPass
      expect(failed.errors[0]).toContain("connection reset")
      const next = yield* controller.runPass
      expect(next.planned.Create).toBe(2)
    }).pipe(Effect.provide(world(testSpec()))))

  it.live("passes never overlap, and a burst of triggers during a pass gives exactly one extra pass", () =>
    Effect.gen(function*() {
      const inFlight = yield* Ref.make(0)
      const maxInFlight = yield* Ref.make(0)
      const lists = yield* Ref.make(0)
      // A platform whose listing takes 100 ms, counting how many listings run at once.
      const slowList = Layer.effect(
        ComputeProvider,
        Effect.map(ComputeProvider, (inner): Context.Tag.Service<ComputeProvider> => ({
          ...inner,
          list: (prefix) =>
            Effect.gen(function*() {
              const now = yield* Ref.updateAndGet(inFlight, (n) => n + 1)
              yield* Ref.update(maxInFlight, (m) => Math.max(m, now))
              yield* Ref.update(lists, (n) => n + 1)
              yield* Effect.sleep(Duration.millis(100))
              yield* Ref.update(inFlight, (n) => n - 1)
              return yield* inner.list(prefix)
            })
        }))
      )
      const layer = Controller.layer(testSpec({ minIdle: 0 }), { background: true, tickInterval: Duration.hours(1) }).pipe(
        Layer.provide(slowList),
        Layer.provideMerge(inMemoryServices())
      )
      yield* Effect.scoped(Effect.gen(function*() {
        const controller = yield* Controller
        yield* Effect.sleep(Duration.millis(30)) // the start-up pass is listing now
        yield* Effect.forEach(Array.from({ length: 100 }), () => controller.trigger, { discard: true })
        // Callers asking for their own pass wait their turn rather than overlapping.
        yield* Effect.all([controller.runPass, controller.runPass], { concurrency: "unbounded" })
        yield* Effect.sleep(Duration.millis(400))
      }).pipe(Effect.provide(layer)))
      // Start-up pass + the one coalesced trigger pass + the two explicit passes.
      expect(yield* Ref.get(lists)).toBe(4)
      expect(yield* Ref.get(maxInFlight)).toBe(1)
    }))

  it.live("claims refill without listing again, and instances become idle as soon as they answer ready, not at the next tick", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      const compute = yield* InMemoryComputeControl
      const idle = Effect.map(rows, (all) => all.filter((r) => r.status === "idle").length)
      const until = <R>(check: Effect.Effect<boolean, never, R>) =>
        Effect.repeat(Effect.zipRight(Effect.sleep(Duration.millis(20)), check), { until: (ok) => ok, times: 250 })
      yield* until(Effect.map(idle, (n) => n === 2))
      const listsBefore = (yield* compute.calls).list ?? 0
      for (const label of ["a", "b", "c"]) {
        yield* controller.claim({ label })
        yield* until(Effect.map(idle, (n) => n === 2))
      }
      // Three claims refilled from the rows and the start-up listing; ready instances went idle within rounds.
      expect((yield* compute.calls).list ?? 0).toBe(listsBefore)
      expect((yield* compute.calls).create).toBe(5)
      expect((yield* controller.lastPass).pipe(Option.map((p) => p.listing))).toEqual(Option.some("recent"))
      // Anything but a refill lists afresh.
      yield* controller.trigger
      yield* until(Effect.map(compute.calls, (c) => (c.list ?? 0) > listsBefore))
      expect((yield* compute.calls).list).toBe(listsBefore + 1)
    }).pipe(Effect.provide(world(testSpec(), { background: true, tickInterval: Duration.hours(1), readinessInterval: Duration.millis(50) }))))

  it.effect("a stop lets the pass in flight finish its creates; claims and passes after it are refused or skipped", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      const compute = yield* InMemoryComputeControl
      yield* compute.setLatency(Duration.seconds(1))
      const pass = yield* Effect.fork(controller.runPass)
      yield* TestClock.adjust(Duration.millis(1500)) // listed at 1 s; the creates are in flight
      expect(yield* statuses).toEqual(["creating", "creating"])
      const stop = yield* Effect.fork(controller.stop(Duration.seconds(20)))
      yield* TestClock.adjust(Duration.seconds(1))
      yield* Fiber.join(stop)
      const summary = yield* Fiber.join(pass)
      expect([summary.planned.Create, summary.failed.Create]).toEqual([2, 0])
      expect(yield* statuses).toEqual(["starting", "starting"])
      const refused = yield* Effect.flip(controller.claim({ label: "late" }))
      expect(refused._tag).toBe("NoIdleInstanceError")
      expect(refused.message).toContain("shutting down")
      const after = yield* controller.runPass
      expect([after.applied, after.listing]).toEqual([false, "skipped"])
    }).pipe(Effect.provide(world(testSpec()))))
})

/**
 * Group commit: a lone caller goes at once; callers who arrive while a batch is in flight share the next call;
 * a failed call fails its own batch only; a result whose caller went away is handed back to be undone.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Ref } from "effect"
import { makeGroupCommit } from "../src/controller/group-commit.js"

/** `run` doubles numbers, fails on a negative one, and holds its first call until `gate` opens. */
const setup = (options: { readonly maxBatch: number }) =>
  Effect.gen(function*() {
    const gate = yield* Deferred.make<void>()
    const batches = yield* Ref.make<ReadonlyArray<ReadonlyArray<number>>>([])
    const undone = yield* Ref.make<ReadonlyArray<number>>([])
    const submit = yield* makeGroupCommit(
      (items: ReadonlyArray<number>) =>
        Effect.gen(function*() {
          const before = yield* Ref.getAndUpdate(batches, (bs) => [...bs, items])
          if (before.length === 0) yield* Deferred.await(gate)
          if (items.some((n) => n < 0)) return yield* Effect.fail(`negative in ${items.join(",")}`)
          return items.map((n) => n * 2)
        }),
      { maxBatch: options.maxBatch, undeliverable: (result) => Ref.update(undone, (u) => [...u, result]) }
    )
    /** Submits `items` while the first call is held, each from its own fiber. */
    const queueBehindFirst = (items: ReadonlyArray<number>) =>
      Effect.gen(function*() {
        const first = yield* Effect.fork(submit(0))
        yield* Effect.repeat(Ref.get(batches), { until: (bs) => bs.length === 1 })
        const rest = yield* Effect.forEach(items, (n) => Effect.fork(submit(n)))
        // Every one of them is waiting before the gate opens.
        yield* Effect.repeat(Effect.forEach(rest, (f) => f.status), { until: (ss) => ss.every((s) => s._tag === "Suspended") })
        return { first, rest }
      })
    return { submit, gate, batches, undone, queueBehindFirst }
  })

describe("group commit", () => {
  it.scoped("a lone caller goes at once, in a batch of its own", () =>
    Effect.gen(function*() {
      const { batches, gate, submit } = yield* setup({ maxBatch: 8 })
      yield* Deferred.succeed(gate, undefined)
      expect(yield* submit(21)).toBe(42)
      expect(yield* submit(5)).toBe(10)
      expect(yield* Ref.get(batches)).toEqual([[21], [5]])
    }))

  it.scoped("callers who arrive during a call share the next one, each getting its own result", () =>
    Effect.gen(function*() {
      const { batches, gate, queueBehindFirst } = yield* setup({ maxBatch: 64 })
      const { first, rest } = yield* queueBehindFirst([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(first)).toBe(0)
      expect(yield* Effect.forEach(rest, Fiber.join)).toEqual([2, 4, 6, 8, 10, 12, 14, 16, 18, 20])
      expect(yield* Ref.get(batches)).toEqual([[0], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]])
    }))

  it.scoped("no call takes more than maxBatch items", () =>
    Effect.gen(function*() {
      const { batches, gate, queueBehindFirst } = yield* setup({ maxBatch: 4 })
      const { rest } = yield* queueBehindFirst([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
      yield* Deferred.succeed(gate, undefined)
      yield* Effect.forEach(rest, Fiber.join)
      expect((yield* Ref.get(batches)).map((b) => b.length)).toEqual([1, 4, 4, 2])
    }))

  it.scoped("a failed call fails every caller of its batch and no other", () =>
    Effect.gen(function*() {
      const { gate, queueBehindFirst, submit } = yield* setup({ maxBatch: 64 })
      const { first, rest } = yield* queueBehindFirst([1, -1, 2])
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(first)).toBe(0)
      const exits = yield* Effect.forEach(rest, Fiber.await)
      expect(exits).toEqual([1, -1, 2].map(() => Exit.fail("negative in 1,-1,2")))
      expect(yield* submit(3)).toBe(6)
    }))

  it.scoped("a result whose caller was interrupted while waiting is handed to `undeliverable`", () =>
    Effect.gen(function*() {
      const { gate, queueBehindFirst, undone } = yield* setup({ maxBatch: 64 })
      const { rest: [stays, leaves] } = yield* queueBehindFirst([7, 8])
      yield* Fiber.interrupt(leaves!)
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(stays!)).toBe(14)
      yield* Effect.repeat(Ref.get(undone), { until: (u) => u.length > 0 })
      expect(yield* Ref.get(undone)).toEqual([16])
    }))
})

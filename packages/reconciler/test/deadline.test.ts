/**
 * The shared timeout: an effect that answers in time gives its exit; one that does not is interrupted at its own
 * deadline, also when it shares its sleeper with others; the caller's interruption does not reach it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, Duration, Effect, Exit, Fiber, Option, Ref, TestClock } from "effect"
import { makeDeadline } from "../src/controller/deadline.js"

const timeout = Duration.seconds(64)

describe("deadline", () => {
  it.scoped("an effect that answers in time gives its exit, failures included, and leaves no timer behind", () =>
    Effect.gen(function*() {
      const within = yield* makeDeadline(timeout)
      expect(yield* within(Effect.succeed(1))).toEqual(Option.some(Exit.succeed(1)))
      expect(yield* within(Effect.fail("refused"))).toEqual(Option.some(Exit.fail("refused")))
      // Their slot (1 s) closed with nothing left running: no timer is left behind.
      yield* TestClock.adjust(Duration.seconds(1))
      expect(Chunk.toReadonlyArray(yield* TestClock.sleeps())).toEqual([])
    }))

  it.scoped("an effect that does not answer is interrupted at its own deadline, not before", () =>
    Effect.gen(function*() {
      const within = yield* makeDeadline(timeout)
      const interrupted = yield* Ref.make(0)
      const hang = Effect.never.pipe(Effect.onInterrupt(() => Ref.update(interrupted, (n) => n + 1)))
      const first = yield* Effect.fork(within(hang))
      // The second starts later in the same slot (1 s): it shares the first one's sleeper, not its deadline.
      yield* TestClock.adjust(Duration.millis(500))
      const second = yield* Effect.fork(within(hang))
      yield* TestClock.adjust(Duration.millis(64_000 - 500 - 1))
      expect(yield* Ref.get(interrupted)).toBe(0)
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* Fiber.join(first)).toEqual(Option.none())
      expect(yield* Ref.get(interrupted)).toBe(1)
      yield* TestClock.adjust(Duration.millis(499))
      expect(second.unsafePoll()).toBeNull()
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* Fiber.join(second)).toEqual(Option.none())
      expect(yield* Ref.get(interrupted)).toBe(2)
    }))

  it.scoped("the caller's interruption does not reach the effect: the caller waits for its outcome", () =>
    Effect.gen(function*() {
      const within = yield* makeDeadline(timeout)
      const started = yield* Deferred.make<void>()
      const finished = yield* Ref.make(false)
      const slow = Deferred.succeed(started, undefined).pipe(
        Effect.zipRight(Effect.sleep(Duration.seconds(1))),
        Effect.zipRight(Ref.set(finished, true))
      )
      const caller = yield* Effect.fork(within(slow))
      yield* Deferred.await(started)
      const interrupting = yield* Effect.fork(Fiber.interrupt(caller))
      yield* TestClock.adjust(Duration.seconds(1))
      yield* Fiber.join(interrupting)
      expect(yield* Ref.get(finished)).toBe(true)
    }))
})

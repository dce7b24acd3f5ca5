/**
 * One timeout for many effects, without a race per effect. `Effect.timeout` races each effect against a sleep,
 * two fibers per call: on the claim path (one provision per claim), with the fiber the provision needs anyway,
 * that was 10–20% of the server's CPU per HTTP claim.
 * Here each effect runs in one fiber, and the effects started within the same slot (1/64 of the timeout) share
 * one sleeper, which interrupts each of them still running at its own deadline.
 */
import { Cause, Clock, Duration, Effect, type Exit, Fiber, Option, Ref } from "effect"

/** The fibers started in one slot with their deadlines (in the order they started), and the slot's sleeper. */
interface Slot {
  readonly ends: number
  readonly running: Map<Fiber.RuntimeFiber<unknown, unknown>, number>
  sleeper: Fiber.RuntimeFiber<void> | undefined
}

/**
 * `within(effect)` runs `effect` in a fiber of its own, which the caller's interruption does not reach, waits
 * for it (the timeout bounds the wait) and answers its exit, or `None` when the timeout interrupted it.
 * Like such a fiber, the sleepers outlive the caller's scope; one whose fibers are all done ends at once.
 */
export const makeDeadline = (
  timeout: Duration.DurationInput
): Effect.Effect<<A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<Option.Option<Exit.Exit<A, E>>>> =>
  Effect.gen(function*() {
    const millis = Duration.toMillis(timeout)
    const slotMillis = Math.max(1, Math.ceil(millis / 64))
    const current = yield* Ref.make<Slot>({ ends: 0, running: new Map(), sleeper: undefined })

    /** Interrupts the slot's fibers at their deadlines, the earliest first, until none is left. */
    const expire = (slot: Slot): Effect.Effect<void> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const next = slot.running.values().next()
        if (next.done) return Effect.void
        if (next.value > now) return Effect.zipRight(Effect.sleep(Duration.millis(next.value - now)), expire(slot))
        return Effect.fiberIdWith((self) => {
          const due = [...slot.running].filter(([, deadline]) => deadline <= now).map(([fiber]) => fiber)
          for (const fiber of due) slot.running.delete(fiber)
          return Effect.forEach(due, (fiber) => Fiber.interruptAsFork(fiber, self), { discard: true })
        }).pipe(Effect.zipRight(expire(slot)))
      })

    const sleeper = (slot: Slot) =>
      // Once the slot is closed, nothing joins it: a slot whose fibers are all done by then needs no more.
      Effect.sleep(Duration.millis(slotMillis)).pipe(
        Effect.zipRight(expire(slot)),
        // Forked where callers are uninterruptible: the last fiber's end must still stop it.
        Effect.interruptible,
        Effect.forkDaemon,
        Effect.map((fiber) => {
          slot.sleeper = fiber
        })
      )

    /** The slot of this instant; a new one starts its sleeper. */
    const slotAt = (now: number) =>
      Effect.flatMap(
        Ref.modify(current, (open): readonly [Option.Option<Slot>, Slot] => {
          if (now < open.ends) return [Option.none(), open]
          const fresh: Slot = { ends: now + slotMillis, running: new Map(), sleeper: undefined }
          return [Option.some(fresh), fresh]
        }),
        Option.match({ onNone: () => Ref.get(current), onSome: (fresh) => Effect.as(sleeper(fresh), fresh) })
      )

    /** A fiber of the slot is done: the last one of a closed slot ends its sleeper. */
    const done = (slot: Slot, fiber: Fiber.RuntimeFiber<unknown, unknown>) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        slot.running.delete(fiber)
        const { sleeper } = slot
        return slot.running.size === 0 && now >= slot.ends && sleeper !== undefined
          ? Effect.fiberIdWith((self) => Fiber.interruptAsFork(sleeper, self))
          : Effect.void
      })

    return <A, E>(effect: Effect.Effect<A, E>) =>
      Effect.uninterruptible(Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const slot = yield* slotAt(now)
        const fiber = yield* Effect.forkDaemon(Effect.interruptible(effect))
        slot.running.set(fiber, now + millis)
        const exit = yield* Fiber.await(fiber)
        yield* done(slot, fiber)
        // Only the sleeper interrupts it: nothing else knows the fiber.
        return exit._tag === "Failure" && Cause.isInterruptedOnly(exit.cause) ? Option.none() : Option.some(exit)
      }))
  })

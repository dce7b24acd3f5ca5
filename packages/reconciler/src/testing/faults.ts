import { Duration, Effect, Ref } from "effect"

/**
 * Fault injection shared by the in-memory services: fail the next N calls with a chosen error,
 * and add latency to every call. Latency uses the Clock, so the TestClock drives it.
 */
export interface Faults<E> {
  /** The next `count` calls (of `operation`, when given) fail with `error`, after their latency. */
  readonly failNext: (count: number, error: E, operation?: string) => Effect.Effect<void>
  readonly setLatency: (latency: Duration.DurationInput) => Effect.Effect<void>
  /** Calls made so far, by operation name. */
  readonly calls: Effect.Effect<Readonly<Record<string, number>>>
}

export interface FaultGate<E> extends Faults<E> {
  /** Wraps one call: counts it, waits the latency, then fails if a failure is pending. */
  readonly guard: (operation: string) => Effect.Effect<void, E>
}

export const makeFaults = <E>(): Effect.Effect<FaultGate<E>> =>
  Effect.gen(function*() {
    const pending = yield* Ref.make<ReadonlyArray<{ readonly error: E; readonly operation: string | undefined }>>([])
    const latency = yield* Ref.make(Duration.zero)
    const calls = yield* Ref.make<Record<string, number>>({})
    return {
      failNext: (count, error, operation) =>
        Ref.update(pending, (queued) => [...queued, ...Array.from({ length: count }, () => ({ error, operation }))]),
      setLatency: (input) => Ref.set(latency, Duration.decode(input)),
      calls: Ref.get(calls),
      guard: (operation) =>
        Effect.gen(function*() {
          yield* Ref.update(calls, (counts) => ({ ...counts, [operation]: (counts[operation] ?? 0) + 1 }))
          const delay = yield* Ref.get(latency)
          if (Duration.greaterThan(delay, Duration.zero)) yield* Effect.sleep(delay)
          const next = yield* Ref.modify(pending, (queued) => {
            const index = queued.findIndex((q) => q.operation === undefined || q.operation === operation)
            return index < 0 ? [undefined, queued] as const : [queued[index]!.error, queued.filter((_, i) => i !== index)] as const
          })
          if (next !== undefined) return yield* Effect.fail(next)
        })
    }
  })

/**
 * Group commit: one call in flight at a time; callers who arrive meanwhile wait together and go in the next one.
 * A lone caller goes at once (no timer, no added latency); under a burst, N callers cost one round trip
 * instead of N — the store's statements, not the claims, were what a burst of claims queued behind.
 */
import { Chunk, Deferred, Effect, Exit, Queue, type Scope } from "effect"

export interface GroupCommitOptions<B> {
  /** Most items one call takes. */
  readonly maxBatch: number
  /** A result whose caller stopped waiting (interrupted): undo it so nothing is left half-done. */
  readonly undeliverable?: (result: B) => Effect.Effect<void>
  /**
   * Runs once the first caller of a batch has arrived, before the batch is taken: a wait here lets callers
   * who are a few milliseconds behind join it (when a call costs more than the latency it adds). Default: none.
   */
  readonly gather?: Effect.Effect<void>
}

/**
 * `submit(item)` for `run`, which takes a batch and answers one result per item, in order.
 * When `run` fails, every caller of that batch gets its failure.
 */
export const makeGroupCommit = <A, B, E>(
  run: (items: ReadonlyArray<A>) => Effect.Effect<ReadonlyArray<B>, E>,
  options: GroupCommitOptions<B>
): Effect.Effect<(item: A) => Effect.Effect<B, E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const waiting = yield* Queue.unbounded<readonly [A, Deferred.Deferred<B, E>]>()
    yield* Effect.addFinalizer(() => Queue.shutdown(waiting))

    const deliver = (deferred: Deferred.Deferred<B, E>, result: B) =>
      Effect.flatMap(Deferred.succeed(deferred, result), (delivered) =>
        delivered || options.undeliverable === undefined ? Effect.void : options.undeliverable(result))

    const worker = Queue.take(waiting).pipe(
      Effect.zipLeft(options.gather ?? Effect.void),
      Effect.flatMap((first) => Effect.map(Queue.takeUpTo(waiting, options.maxBatch - 1), (rest) => [first, ...Chunk.toReadonlyArray(rest)])),
      Effect.flatMap((batch) =>
        Effect.flatMap(Effect.exit(run(batch.map(([item]) => item))), (exit) =>
          Effect.forEach(batch, ([, deferred], i) =>
            Exit.isSuccess(exit) ? deliver(deferred, exit.value[i]!) : Deferred.failCause(deferred, exit.cause), { discard: true }))),
      Effect.forever
    )
    yield* Effect.forkScoped(worker)

    return (item: A) =>
      Effect.gen(function*() {
        const deferred = yield* Deferred.make<B, E>()
        yield* Queue.offer(waiting, [item, deferred])
        // Interrupted while waiting: mark the deferred done, so a result that comes later is undone, not lost.
        return yield* Deferred.await(deferred).pipe(Effect.onInterrupt(() => Deferred.interrupt(deferred)))
      })
  })

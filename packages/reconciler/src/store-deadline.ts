/**
 * Every call to the store answers in bounded time. When the database cannot be reached — a restart refusing
 * connections, a partition where nothing answers — a call fails with a retryable `StoreError` after `deadline`
 * instead of waiting as long as the outage lasts: a claim is answered 503 with a time to come back, a pass
 * fails its observation and the next one tries again. The call itself is left to end in the background (its
 * connection's own timeouts end it), so the caller is not held by its cleanup either.
 */
import { Duration, Effect, Layer } from "effect"
import { StoreError } from "./errors.js"
import { InstanceStore } from "./services.js"

export const withStoreDeadline = (store: InstanceStore["Type"], deadline: Duration.DurationInput): InstanceStore["Type"] => {
  const duration = Duration.decode(deadline)
  const bound = <A, E>(operation: string, call: Effect.Effect<A, E>): Effect.Effect<A, E | StoreError> =>
    Effect.disconnect(call).pipe(
      Effect.timeoutFail({
        duration,
        onTimeout: () => new StoreError({ operation, message: `the database did not answer within ${Duration.format(duration)}`, retryable: true })
      })
    )
  return {
    list: (pool) => bound("store.list", store.list(pool)),
    get: (id) => bound("store.get", store.get(id)),
    insert: (row) => bound("store.insert", store.insert(row)),
    transition: (change) => bound("store.transition", store.transition(change)),
    transitionMany: (changes) => bound("store.transitionMany", store.transitionMany(changes)),
    claimIdle: (pool, count, claimer) => bound("store.claimIdle", store.claimIdle(pool, count, claimer)),
    remove: (id, from) => bound("store.remove", store.remove(id, from)),
    counts: (pool) => bound("store.counts", store.counts(pool))
  }
}

/** The `InstanceStore` in context, every call bounded by `deadline`. */
export const StoreDeadline = {
  layer: (deadline: Duration.DurationInput) => Layer.effect(InstanceStore, Effect.map(InstanceStore, (store) => withStoreDeadline(store, deadline)))
}

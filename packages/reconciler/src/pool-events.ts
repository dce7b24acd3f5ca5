/**
 * Pool events: what replicas tell each other so that waiting claims are served without polling.
 * `Idle`: a row of the pool may have become claimable. `Waiting`: how many claims a replica holds in its
 * waiting room — every replica keeps the sum, so whichever one leads creates instances for all of them.
 */
import { Context, Effect, Either, Layer, PubSub, Schema, Stream } from "effect"
import type { StoreError } from "./errors.js"

/** A row of `pool` became idle (ready, or handed back by a claim that did not use it). */
export const IdleEvent = Schema.TaggedStruct("Idle", { pool: Schema.String })
/** `replica` now holds `waiting` claims of `pool` that wait for an instance. An absolute count, so repeats are harmless. */
export const WaitingEvent = Schema.TaggedStruct("Waiting", { pool: Schema.String, replica: Schema.String, waiting: Schema.Int })
/** A replica (re)started listening and may have missed counts: every replica reports its `Waiting` count again. */
export const CensusEvent = Schema.TaggedStruct("Census", { pool: Schema.String })
/** Emitted first by every subscription: from here on, no event is missed (until the stream fails). */
export const ListeningEvent = Schema.TaggedStruct("Listening", {})

/** An event as carried between processes. */
export const PublishedEvent = Schema.Union(IdleEvent, WaitingEvent, CensusEvent)
export type PublishedEvent = typeof PublishedEvent.Type
export type PoolEvent = PublishedEvent | typeof ListeningEvent.Type

/** Events between the replicas of a deployment (Postgres LISTEN/NOTIFY; in one process, a PubSub). */
export class PoolEvents extends Context.Tag("@warmpool/reconciler/PoolEvents")<
  PoolEvents,
  {
    /** Sends `event` to every subscriber, this replica's included. */
    readonly publish: (event: PublishedEvent) => Effect.Effect<void, StoreError>
    /**
     * Every replica's events. The first element is `Listening`; the stream fails when the connection is
     * lost (events may have been missed then: subscribe again and re-check what matters).
     */
    readonly subscribe: Stream.Stream<PoolEvent, StoreError>
  }
>() {}

/** Pool events within one process: for a single replica, tests, and the in-memory world. */
export const makeInProcessPoolEvents = Effect.gen(function*() {
  const hub = yield* PubSub.unbounded<PublishedEvent>()
  const service: PoolEvents["Type"] = {
    publish: (event) => Effect.asVoid(PubSub.publish(hub, event)),
    // Subscribed before `Listening` is emitted: nothing published after it can be missed.
    subscribe: Stream.unwrapScoped(
      Effect.map(PubSub.subscribe(hub), (queue) => Stream.concat(Stream.succeed<PoolEvent>(ListeningEvent.make({})), Stream.fromQueue(queue)))
    )
  }
  return service
})

export const InProcessPoolEvents = {
  layer: Layer.effect(PoolEvents, makeInProcessPoolEvents)
}

const wire = Schema.parseJson(PublishedEvent)

/** A published event as text for the wire. */
export const encodePoolEvent: (event: PublishedEvent) => string = Schema.encodeSync(wire)

/** The event `text` carries, or `undefined` for anything else (another program may share the channel). */
export const decodePoolEvent = (text: string): PublishedEvent | undefined => Either.getOrUndefined(Schema.decodeEither(wire)(text))

/**
 * The `PoolEvents` contract: a subscription says `Listening` first, then hears every event published after
 * that, in order and intact, whoever publishes; every subscriber hears every event; publishing to nobody is fine.
 */
import { describe, expect, layer as withLayer } from "@effect/vitest"
import { Chunk, Duration, Effect, Fiber, type Layer, Stream } from "effect"
import { CensusEvent, IdleEvent, type PoolEvent, PoolEvents, type PublishedEvent, WaitingEvent } from "../../pool-events.js"

/** The first `n` events of a fresh subscription, `Listening` included; `publish` runs once it is listening. */
const firstEvents = (n: number, publish: Effect.Effect<unknown, unknown>) =>
  Effect.gen(function*() {
    const events = yield* PoolEvents
    const listening = yield* Effect.makeLatch(false)
    const collected = yield* events.subscribe.pipe(
      Stream.tap((event) => (event._tag === "Listening" ? listening.open : Effect.void)),
      Stream.take(n),
      Stream.runCollect,
      Effect.timeoutFail({ duration: Duration.seconds(10), onTimeout: () => new Error(`fewer than ${n} events within 10 s`) }),
      Effect.fork
    )
    yield* listening.await
    yield* publish
    return Chunk.toReadonlyArray(yield* Fiber.join(collected)) as ReadonlyArray<PoolEvent>
  })

let sequence = 0
const uniquePool = () => `conf-events-${Date.now().toString(36)}-${(sequence++).toString(36)}`

export const poolEventsConformance = <E>(name: string, layer: Layer.Layer<PoolEvents, E>) =>
  describe(`PoolEvents conformance: ${name}`, () => {
    withLayer(layer, { timeout: 60_000, excludeTestServices: true })((it) => {
      it.effect("a subscription says Listening, then hears what is published after, in order and intact", () =>
        Effect.gen(function*() {
          const events = yield* PoolEvents
          const pool = uniquePool()
          const sent: ReadonlyArray<PublishedEvent> = [
            IdleEvent.make({ pool }),
            WaitingEvent.make({ pool, replica: "r-1", waiting: 3 }),
            WaitingEvent.make({ pool: `${pool}-other`, replica: "r-2", waiting: 0 }),
            CensusEvent.make({ pool }),
            IdleEvent.make({ pool: "pool with spaces, quotes ' \" and ünïcode" })
          ]
          const got = yield* firstEvents(1 + sent.length, Effect.forEach(sent, events.publish, { discard: true }))
          expect(got).toEqual([{ _tag: "Listening" }, ...sent])
        }))

      it.effect("every subscriber hears every event", () =>
        Effect.gen(function*() {
          const events = yield* PoolEvents
          const pool = uniquePool()
          const ready = yield* Effect.makeLatch(false)
          const second = yield* events.subscribe.pipe(
            Stream.tap((e) => (e._tag === "Listening" ? ready.open : Effect.void)),
            Stream.filter((e) => e._tag === "Idle" && e.pool === pool),
            Stream.take(1),
            Stream.runCollect,
            Effect.timeout(Duration.seconds(10)),
            Effect.fork
          )
          yield* ready.await
          const first = yield* firstEvents(2, events.publish(IdleEvent.make({ pool })))
          expect(first[1]).toEqual({ _tag: "Idle", pool })
          expect(Chunk.toReadonlyArray(yield* Fiber.join(second))).toEqual([{ _tag: "Idle", pool }])
        }))

      it.effect("publishing with nobody listening succeeds, and a later subscription does not hear it", () =>
        Effect.gen(function*() {
          const events = yield* PoolEvents
          const pool = uniquePool()
          yield* events.publish(IdleEvent.make({ pool: `${pool}-unheard` }))
          const got = yield* firstEvents(2, events.publish(IdleEvent.make({ pool })))
          expect(got).toEqual([{ _tag: "Listening" }, { _tag: "Idle", pool }])
        }))
    })
  })

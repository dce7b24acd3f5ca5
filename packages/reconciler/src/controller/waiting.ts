/**
 * The waiting room: claims that found nothing idle wait here, first come first served, until a row
 * becomes idle or their deadline passes. Nothing polls: a waiter is served when an `Idle` event arrives
 * (Postgres LISTEN/NOTIFY across replicas) or when it joins. Each replica tells the others how many claims
 * it holds, so that whichever replica leads creates instances for all of them.
 */
import { Clock, Deferred, Duration, Effect, Exit, Metric, Option, Queue, Ref, Schedule, type Scope, Stream } from "effect"
import { randomBytes } from "node:crypto"
import type { Instance } from "../domain/instance.js"
import type { PoolSpec } from "../domain/pool-spec.js"
import type { StoreError } from "../errors.js"
import { CensusEvent, IdleEvent, makeInProcessPoolEvents, type PoolEvent, PoolEvents, WaitingEvent } from "../pool-events.js"
import { InstanceStore } from "../services.js"
import { describeError } from "./apply.js"
import * as metrics from "./metrics.js"

/** The longest a claim may wait (the API refuses more). */
export const MAX_WAIT_MS = 120_000

/** Another replica's count older than this is stale: none of its waiters can still be waiting. */
const STALE_AFTER_MS = MAX_WAIT_MS + 30_000

interface Waiter {
  readonly ticket: number
  readonly deferred: Deferred.Deferred<Instance>
  readonly onPosition: (position: number) => Effect.Effect<void>
  /** The place it was last told, so that it hears only changes. */
  position: number
}

export interface WaitingRoom {
  /** A place in the line; a claim that retries after a failed provisioning keeps its ticket, and so its place. */
  readonly ticket: Effect.Effect<number>
  /** Whether claims wait on this replica: a newcomer then queues behind them instead of taking a row first. */
  readonly occupied: Effect.Effect<boolean>
  /**
   * Waits until `deadline` (epoch ms) for an idle row, moved to `claiming` for this caller; `None` at the deadline.
   * `onPosition` hears the caller's place in line (1 = next) whenever it changes. A caller interrupted while
   * waiting leaves nothing behind: its place is freed, and a row handed to it at that moment goes back to idle.
   */
  readonly wait: (
    ticket: number,
    deadline: number,
    onPosition: (position: number) => Effect.Effect<void>
  ) => Effect.Effect<Option.Option<Instance>>
  /** Claims waiting for an instance of this pool, on every replica. */
  readonly demand: Effect.Effect<number>
  /** Says that a row of the pool became idle: waiters here and on other replicas try to take it. */
  readonly announceIdle: Effect.Effect<void>
  /** Gives a row that was moved to `claiming` but not used back to idle, and says so. */
  readonly giveBack: (row: Instance) => Effect.Effect<void>
  /**
   * A stop: every claim waiting here ends now as if at its deadline (a 503 that says when to come back, which
   * another replica or this one's successor serves), instead of holding the stop until its deadline.
   */
  readonly close: Effect.Effect<void>
}

export const makeWaitingRoom = (
  spec: PoolSpec,
  options: {
    /** Asks for a pass: more claims wait than before, the leader may need to create. */
    readonly trigger: Effect.Effect<void>
    /** Never handed to a waiting claim (PROTECTED_INSTANCES). */
    readonly protectedIds?: ReadonlySet<string>
  }
): Effect.Effect<WaitingRoom, never, InstanceStore | Scope.Scope> =>
  Effect.gen(function*() {
    const store = yield* InstanceStore
    const events = yield* Effect.serviceOption(PoolEvents).pipe(
      Effect.flatMap(Option.match({ onSome: Effect.succeed, onNone: () => makeInProcessPoolEvents }))
    )
    const replica = randomBytes(8).toString("hex")
    const pool = spec.name
    const exclude = [...(options.protectedIds ?? [])]
    const waitingGauge = Metric.tagged(metrics.claimsWaiting, "pool", pool)

    const waiters = yield* Ref.make<ReadonlyArray<Waiter>>([])
    const closing = yield* Deferred.make<void>()
    const tickets = yield* Ref.make(0)
    // A sliding queue of one: any number of wake-ups while serving leave exactly one more round behind.
    const wakeups = yield* Queue.sliding<void>(1)
    const wake = Effect.asVoid(Queue.offer(wakeups, undefined))
    // Other replicas' waiting claims, as they last reported them, with when we heard it.
    const elsewhere = yield* Ref.make(new Map<string, { readonly waiting: number; readonly at: number }>())
    // The latest count of this replica, published in order by one fiber (a burst collapses into its last value).
    const counts = yield* Queue.sliding<number>(1)

    const logFailure = (what: string) => (error: StoreError) => Effect.logWarning(`${what}: ${describeError(error)}`)

    const announceIdle = Effect.zipRight(
      wake,
      events.publish(IdleEvent.make({ pool })).pipe(Effect.catchAll(logFailure("could not announce an idle instance")))
    )

    const giveBack = (row: Instance) =>
      store.transition({ id: row.id, from: ["claiming"], to: "idle" }).pipe(
        Effect.zipRight(announceIdle),
        Effect.catchAll((error) => Effect.logWarning(`instance ${row.id} could not go back to idle: ${describeError(error)}`))
      )

    /** After the line changed: tell each waiter its new place, and every replica the new count. */
    const lineChanged = Effect.gen(function*() {
      const line = yield* Ref.get(waiters)
      yield* Effect.forEach(line, (waiter, i) => {
        if (waiter.position === i + 1) return Effect.void
        waiter.position = i + 1
        return waiter.onPosition(i + 1)
      }, { discard: true })
      yield* Queue.offer(counts, line.length)
      yield* Metric.set(waitingGauge, line.length)
    })

    /** Hands idle rows to the first waiters in line, as many as there are rows. */
    const serve = Effect.gen(function*() {
      const line = yield* Ref.get(waiters)
      if (line.length === 0) return
      const rows = yield* store.claimIdle(pool, line.length, null, exclude)
      if (rows.length === 0) return
      const served = new Set(line.slice(0, rows.length).map((w) => w.ticket))
      yield* Ref.update(waiters, (all) => all.filter((w) => !served.has(w.ticket)))
      yield* Effect.forEach(rows, (row, i) =>
        Effect.flatMap(Deferred.succeed(line[i]!.deferred, row), (delivered) => (delivered ? Effect.void : giveBack(row))), { discard: true })
      yield* lineChanged
    })
    // A store that fails is tried again a few times, then left to the next wake-up.
    const retrying = Schedule.exponential(Duration.millis(100)).pipe(Schedule.intersect(Schedule.recurs(5)))
    yield* Effect.forkScoped(
      Queue.take(wakeups).pipe(
        Effect.zipRight(serve.pipe(Effect.retry(retrying), Effect.catchAll(logFailure("waiting claims could not take idle instances")))),
        Effect.forever
      )
    )

    yield* Effect.forkScoped(
      Queue.take(counts).pipe(
        Effect.flatMap((waiting) =>
          events.publish(WaitingEvent.make({ pool, replica, waiting })).pipe(Effect.catchAll(logFailure("could not report waiting claims")))),
        Effect.forever
      )
    )

    const onEvent = (event: PoolEvent) =>
      Effect.gen(function*() {
        // Listening (again): events may have been missed meanwhile, so look at the rows once, and ask every
        // replica for its count (the leader may have started after they last said it).
        if (event._tag === "Listening") {
          return yield* wake.pipe(
            Effect.zipRight(events.publish(CensusEvent.make({ pool }))),
            Effect.catchAll(logFailure("could not ask for waiting claims"))
          )
        }
        if (event.pool !== pool) return
        if (event._tag === "Idle") return yield* wake
        if (event._tag === "Census") return yield* Effect.flatMap(Ref.get(waiters), (line) => Queue.offer(counts, line.length))
        if (event.replica === replica) return
        const at = yield* Clock.currentTimeMillis
        const before = yield* Ref.getAndUpdate(elsewhere, (m) => {
          // Replicas come and go (each start is a new one): forget those not heard of for a while.
          const next = new Map([...m].filter(([, seen]) => at - seen.at < STALE_AFTER_MS))
          return next.set(event.replica, { waiting: event.waiting, at })
        })
        if (event.waiting > (before.get(event.replica)?.waiting ?? 0)) yield* options.trigger
      })
    yield* Effect.forkScoped(
      events.subscribe.pipe(
        Stream.runForEach(onEvent),
        Effect.tapError(logFailure("pool events: listening again")),
        Effect.retry(Schedule.exponential(Duration.millis(200)).pipe(Schedule.either(Schedule.spaced(Duration.seconds(10))))),
        Effect.forever
      )
    )

    /** A row handed to a caller who went away is not the caller's to keep. */
    const abandon = (deferred: Deferred.Deferred<Instance>) =>
      Effect.flatMap(Deferred.interrupt(deferred), (marked) =>
        marked ? Effect.void : Effect.flatMap(Effect.exit(Deferred.await(deferred)), (exit) => (Exit.isSuccess(exit) ? giveBack(exit.value) : Effect.void)))

    const wait: WaitingRoom["wait"] = (ticket, deadline, onPosition) =>
      Effect.flatMap(Deferred.make<Instance>(), (deferred) =>
        Effect.gen(function*() {
          const waiter: Waiter = { ticket, deferred, onPosition, position: 0 }
          yield* Ref.update(waiters, (line) => [...line, waiter].sort((a, b) => a.ticket - b.ticket))
          const remaining = deadline - (yield* Clock.currentTimeMillis)
          yield* Effect.zipRight(lineChanged, wake)
          // More claims wait than before: a pass may have to create for them.
          yield* options.trigger
          const got = yield* Effect.race(Effect.asSome(Deferred.await(deferred)), Effect.as(Deferred.await(closing), Option.none<Instance>())).pipe(
            Effect.timeoutOption(Duration.millis(Math.max(0, remaining))),
            Effect.map(Option.flatten)
          )
          if (Option.isSome(got)) return got
          // The deadline (or a stop): leave the line, unless a row was handed over in the same instant.
          return (yield* Deferred.interrupt(deferred)) ? Option.none() : Option.some(yield* Deferred.await(deferred))
        }).pipe(
          Effect.onInterrupt(() => abandon(deferred)),
          Effect.ensuring(Ref.update(waiters, (line) => line.filter((w) => w.ticket !== ticket)).pipe(Effect.zipRight(lineChanged))),
          Effect.withSpan("Controller.waitForInstance", { attributes: { pool } })
        ))

    const room: WaitingRoom = {
      ticket: Ref.getAndUpdate(tickets, (n) => n + 1),
      occupied: Effect.map(Ref.get(waiters), (line) => line.length > 0),
      wait,
      demand: Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        let total = (yield* Ref.get(waiters)).length
        for (const { at, waiting } of (yield* Ref.get(elsewhere)).values()) if (now - at < STALE_AFTER_MS) total += waiting
        return total
      }),
      announceIdle,
      giveBack,
      close: Deferred.succeed(closing, undefined)
    }
    return room
  })

/**
 * Leader election through a lease row. The leader renews it in the background; every write it makes
 * inside `whileLeader` carries the lease's epoch (a fencing token), so a replica that lost the lease —
 * paused, cut off, slow — can never land a write after another one took over.
 *
 * The lease is short (3 s, renewed every 500 ms, standbys asking as often): a leader that dies without
 * releasing it is replaced within ttl + one renewal interval. Renewals are one UPDATE on a one-row table,
 * which Postgres serves in well under a millisecond; a lease held through a session advisory lock would
 * hand over even sooner, but would also hand over when a leader's connection is merely reset, which the
 * lease rides out (its pool reconnects before the lease expires).
 */
import { SqlClient } from "@effect/sql"
import { Clock, Duration, Effect, Exit, Fiber, Layer, Option, Schedule, Stream, SubscriptionRef } from "effect"
import { randomUUID } from "node:crypto"
import { Leadership } from "@warmpool/reconciler"
import { CurrentFence, type Fence } from "./fence.js"

export interface PgLeadershipOptions {
  /** The lease's name: one per pool. */
  readonly name: string
  /** How long a lease lasts without renewal. Default 3 s. */
  readonly ttl?: Duration.DurationInput
  /** How often the holder renews (and others try to take it). Default ttl / 6. */
  readonly renewEvery?: Duration.DurationInput
  /** This replica's identity. Default: a random id. */
  readonly holder?: string
}

export const make = (options: PgLeadershipOptions) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const ttl = Duration.decode(options.ttl ?? Duration.seconds(3))
    const renewEvery = options.renewEvery ? Duration.decode(options.renewEvery) : Duration.divide(ttl, 6).pipe(Option.getOrElse(() => ttl))
    const holder = options.holder ?? randomUUID()
    const ttlMs = Duration.toMillis(ttl)
    const lease = yield* SubscriptionRef.make(Option.none<Fence>())

    /** Take the lease if free or expired, renew it if ours; the epoch changes whenever the holder does. */
    const acquireOrRenew = sql<{ epoch: string }>`
      INSERT INTO warmpool_leases AS l (name, holder, epoch, expires_at)
      VALUES (${options.name}, ${holder}, 1, now() + ${ttlMs} * interval '1 millisecond')
      ON CONFLICT (name) DO UPDATE SET
        holder = EXCLUDED.holder,
        epoch = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > now() THEN l.epoch ELSE l.epoch + 1 END,
        expires_at = EXCLUDED.expires_at
      WHERE l.holder = EXCLUDED.holder OR l.expires_at <= now()
      RETURNING epoch`.pipe(
      Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), (r): Fence => ({ name: options.name, holder, epoch: Number(r.epoch) })))
    )

    /**
     * When this replica must have stopped acting, by its own clock: half the ttl after the last renewal that
     * succeeded was SENT. The database set that lease's expiry at its `now()` + ttl, and its `now()` is later
     * than the sending, so whatever the clocks say another replica can take the lease only a full ttl after
     * that moment: the leader stands down (and its pass is interrupted) at least half a ttl before.
     */
    let standDownAt = 0
    const renew = Effect.gen(function*() {
      const sentAt = yield* Clock.currentTimeMillis
      // While leading, the renewal may take until the stand-down moment; a standby's ask, a third of the ttl.
      const leading = Option.isSome(yield* SubscriptionRef.get(lease))
      const within = leading ? Math.max(0, standDownAt - sentAt) : ttlMs / 3
      const next = yield* Effect.disconnect(acquireOrRenew).pipe(
        Effect.timeoutFail({ duration: within, onTimeout: () => "lease renewal timed out" })
      )
      if (Option.isSome(next)) standDownAt = sentAt + ttlMs / 2
      return next
    })

    const step = renew.pipe(
      Effect.tapError((error) => Effect.logWarning(`lease ${options.name}: renewal failed, standing down: ${String(error)}`)),
      Effect.orElseSucceed(() => Option.none<Fence>()),
      Effect.flatMap((next) =>
        SubscriptionRef.modify(lease, (current) => {
          const changed = Option.isSome(current) !== Option.isSome(next) ||
            (Option.isSome(current) && Option.isSome(next) && current.value.epoch !== next.value.epoch)
          return [changed ? Option.some(next) : Option.none(), next] as const
        })
      ),
      Effect.flatMap(Option.match({
        onNone: () => Effect.void,
        onSome: (next) => Effect.logInfo(Option.isSome(next) ? `lease ${options.name}: leading (epoch ${next.value.epoch})` : `lease ${options.name}: standing by`)
      }))
    )
    yield* step
    yield* Effect.forkScoped(Effect.repeat(step, Schedule.spaced(renewEvery)))

    // Release on shutdown, so another replica takes over at once instead of after the ttl.
    yield* Effect.addFinalizer(() =>
      sql`UPDATE warmpool_leases SET expires_at = now() WHERE name = ${options.name} AND holder = ${holder}`.pipe(Effect.ignore)
    )

    const service: Leadership["Type"] = {
      leading: lease.changes.pipe(Stream.map(Option.isSome), Stream.changes),
      whileLeader: (effect) =>
        Effect.gen(function*() {
          const current = yield* SubscriptionRef.get(lease)
          if (Option.isNone(current)) return Option.none()
          const fence = current.value
          // Interrupt the work the moment the lease is lost or changes hands; the fence covers in-flight writes.
          const lost = lease.changes.pipe(
            Stream.filter((l) => Option.isNone(l) || l.value.epoch !== fence.epoch),
            Stream.runHead
          )
          const work = yield* Effect.fork(Effect.locally(effect, CurrentFence, Option.some(fence)))
          const watcher = yield* Effect.fork(Effect.zipRight(lost, Fiber.interrupt(work)))
          const exit = yield* Fiber.await(work)
          yield* Fiber.interrupt(watcher)
          if (Exit.isSuccess(exit)) return Option.some(exit.value)
          // Interrupted because the lease was lost mid-pass: this replica did not lead it through.
          if (Exit.isInterrupted(exit)) return Option.none()
          return yield* Effect.failCause(exit.cause)
        })
    }
    return service
  })

export const PgLeadership = {
  /** Leadership for one pool, renewing for the scope's lifetime (for a lease per pool). */
  make,
  /** Leadership for one pool; renews in the background for the layer's lifetime. */
  layer: (options: PgLeadershipOptions) => Layer.scoped(Leadership, make(options))
}

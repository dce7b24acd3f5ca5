/**
 * What several requests (on one replica or on several) must agree on: one top-up of a key at a time, one claim per
 * conversation, one claim per Idempotency-Key. Postgres makes it hold across replicas and restarts
 * (pg-coordination.ts); `inProcess` serves a single server without a database (tests, a library user's app).
 */
import type { StoreError } from "@warmpool/reconciler"
import { Context, Data, Effect, Option } from "effect"

/** Where an Idempotency-Key stands when a claim arrives with it. */
export type IdempotencyStart = Data.TaggedEnum<{
  /** Nobody claimed with it (in the last 24 h): this request claims, and records its answer. */
  First: {}
  /** A claim with it answered: the same answer again. */
  Answered: { readonly answer: unknown }
  /** A claim with it is still running: wait for its answer. */
  Running: {}
  /** It was used for a different claim. */
  Mismatch: {}
}>
export const IdempotencyStart = Data.taggedEnum<IdempotencyStart>()

/** How long an Idempotency-Key's answer is kept. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000

/** A reservation no claim can outlive (its waiting, every provisioning attempt): after this its holder is taken for dead. */
export const RESERVATION_TTL_MS = 10 * 60 * 1000

export class Coordination extends Context.Tag("@warmpool/server/Coordination")<
  Coordination,
  {
    /** Runs `effect` holding the lock named `key`: one at a time, on every replica. */
    readonly exclusive: (key: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | StoreError, R>
    /**
     * Reserves `joinUrl` for the claim `holder`, unless an instance is claiming, claimed or awaiting acceptance
     * for it, or another claim holds it: then that instance's id (null while the other claim picks one).
     */
    readonly reserveConversation: (joinUrl: string, holder: string) => Effect.Effect<Option.Option<{ readonly instanceId: string | null }>, StoreError>
    /** Records the instance the reserving claim took (what a competing claim is told). */
    readonly attachConversation: (joinUrl: string, holder: string, instanceId: string) => Effect.Effect<void, StoreError>
    /** Ends the reservation: the claim is over (its row, if it won, now names the conversation itself). */
    readonly releaseConversation: (joinUrl: string, holder: string) => Effect.Effect<void, StoreError>
    /** Where `key` stands; `First` makes this request its claimer. `fingerprint` tells the same claim from another. */
    readonly startIdempotent: (key: string, fingerprint: string) => Effect.Effect<IdempotencyStart, StoreError>
    /** Records the answer of the claim made with `key`. */
    readonly finishIdempotent: (key: string, answer: unknown) => Effect.Effect<void, StoreError>
    /** Forgets `key`: its claim failed, so a retry claims again. */
    readonly abandonIdempotent: (key: string) => Effect.Effect<void, StoreError>
  }
>() {}

/**
 * Coordination within one process: locks are semaphores, reservations and keys live in memory. `activeFor` finds
 * the instance claiming, claimed or awaiting acceptance for a conversation.
 */
export const inProcessCoordination = (activeFor: (joinUrl: string) => Effect.Effect<Option.Option<string>, StoreError>) =>
  Effect.gen(function*() {
    const locks = new Map<string, { readonly semaphore: Effect.Semaphore; users: number }>()
    const exclusive = (key: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          const lock = locks.get(key) ?? { semaphore: Effect.unsafeMakeSemaphore(1), users: 0 }
          lock.users++
          locks.set(key, lock)
          return lock
        }),
        (lock) => lock.semaphore.withPermits(1)(effect),
        // The last user forgets the lock: one per key ever seen would grow without end.
        (lock) => Effect.sync(() => void (--lock.users === 0 && locks.delete(key)))
      )

    const conversations = new Map<string, { readonly holder: string; instanceId: string | null }>()
    const keys = new Map<string, { readonly fingerprint: string; readonly at: number; answer?: unknown }>()
    const guard = yield* Effect.makeSemaphore(1)
    const service: Coordination["Type"] = {
      exclusive,
      reserveConversation: (joinUrl, holder) =>
        guard.withPermits(1)(Effect.gen(function*() {
          const active = yield* activeFor(joinUrl)
          if (Option.isSome(active)) return Option.some({ instanceId: active.value })
          const held = conversations.get(joinUrl)
          if (held !== undefined) return Option.some({ instanceId: held.instanceId })
          conversations.set(joinUrl, { holder, instanceId: null })
          return Option.none()
        })),
      attachConversation: (joinUrl, holder, instanceId) =>
        Effect.sync(() => {
          const held = conversations.get(joinUrl)
          if (held?.holder === holder) held.instanceId = instanceId
        }),
      releaseConversation: (joinUrl, holder) =>
        Effect.sync(() => void (conversations.get(joinUrl)?.holder === holder && conversations.delete(joinUrl))),
      startIdempotent: (key, fingerprint) =>
        Effect.sync(() => {
          const now = Date.now()
          for (const [k, v] of keys) if (now - v.at > IDEMPOTENCY_TTL_MS) keys.delete(k)
          const known = keys.get(key)
          if (known === undefined || (!("answer" in known) && now - known.at > RESERVATION_TTL_MS)) {
            keys.set(key, { fingerprint, at: now })
            return IdempotencyStart.First()
          }
          if (known.fingerprint !== fingerprint) return IdempotencyStart.Mismatch()
          return "answer" in known ? IdempotencyStart.Answered({ answer: known.answer }) : IdempotencyStart.Running()
        }),
      finishIdempotent: (key, answer) =>
        Effect.sync(() => {
          const known = keys.get(key)
          if (known !== undefined) known.answer = answer
        }),
      abandonIdempotent: (key) => Effect.sync(() => void keys.delete(key))
    }
    return service
  })

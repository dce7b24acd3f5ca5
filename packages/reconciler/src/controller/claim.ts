/**
 * Claims: take the newest idle instance atomically, provision it, record the outcome.
 * An instance whose outcome is unknown or that is already bound never goes back to idle (DESIGN §8):
 * the seed's endless claim loop came from doing exactly that.
 */
import { Clock, Duration, Effect, Either, Metric, Option, Schema } from "effect"
import { applyPatch, type Instance, type InstancePatch } from "../domain/instance.js"
import type { PoolSpec } from "../domain/pool-spec.js"
import { ClaimFailedError, InvalidClaimError, NoIdleInstanceError, ProvisionUnknownError } from "../errors.js"
import { Incarnations, InstanceRuntime, InstanceStore, type Transition } from "../services.js"
import { describeError } from "./apply.js"
import { type ClaimError, type ClaimOptions, ClaimProgress, type ClaimResult } from "./controller.js"
import { makeDeadline } from "./deadline.js"
import { makeGroupCommit } from "./group-commit.js"
import * as metrics from "./metrics.js"
import { MAX_WAIT_MS, type WaitingRoom } from "./waiting.js"

/** A claim's place in the waiting room and its deadline (epoch ms). */
interface Waiting {
  readonly ticket: number
  readonly deadline: number
}

export const makeClaim = <Request, Result>(
  spec: PoolSpec,
  options: {
    readonly attempts: number
    readonly timeout: Duration.DurationInput
    readonly trigger: Effect.Effect<void>
    readonly room: WaitingRoom
    /** Never taken by a claim (PROTECTED_INSTANCES). */
    readonly protectedIds: ReadonlySet<string>
  }
) =>
  Effect.gen(function*() {
    const store = yield* InstanceStore
    const exclude = [...options.protectedIds]
    const runtime = yield* InstanceRuntime
    // The request is the runtime's Type (decoded by the caller, e.g. from JSON): checked, not transformed again.
    const validate = Schema.validate(runtime.request)
    // Claims carry this run's stamp: if it dies mid-claim, the leader crashes the row at once (rule 9).
    const { self } = yield* Incarnations
    const withinTimeout = yield* makeDeadline(options.timeout)
    /** Rows this process holds in `claiming` and is settling: one of ours not here has no claim behind it (rule 9). */
    const settling = new Set<string>()

    // Claims that arrive together take their rows in one statement and record their outcomes in another.
    const takeIdle = yield* makeGroupCommit(
      (requests: ReadonlyArray<void>) =>
        Effect.map(store.claimIdle(spec.name, requests.length, self, exclude), (rows) => requests.map((_, i) => Option.fromNullable(rows[i]))),
      {
        maxBatch: 64,
        // Its claimer went away before it was provisioned: it is as idle as it was.
        undeliverable: Option.match({ onNone: () => Effect.void, onSome: options.room.giveBack })
      }
    )
    const recordClaimed = yield* makeGroupCommit(
      (changes: ReadonlyArray<Transition>) =>
        Effect.map(store.transitionMany(changes), (applied) => {
          const landed = new Set(applied)
          return changes.map((change) => landed.has(change.id))
        }),
      { maxBatch: 64 }
    )

    /** An idle row now; or, for a waiting claim, the first one handed to it in line before its deadline. */
    const take = (waiting: Waiting | undefined, progress: (p: ClaimProgress) => Effect.Effect<void>) =>
      Effect.gen(function*() {
        // Claims already in line come first: a waiting newcomer joins the line instead of taking a row ahead of them.
        if (waiting === undefined || !(yield* options.room.occupied)) {
          const now = yield* takeIdle()
          if (Option.isSome(now) || waiting === undefined || waiting.deadline <= (yield* Clock.currentTimeMillis)) return now
        }
        return yield* options.room.wait(waiting.ticket, waiting.deadline, (position) => progress(ClaimProgress.Queued({ position })))
      })

    /**
     * Provisions a row this claim holds and records the outcome: the claim's result, or the failures so far
     * when another instance may be tried. Runs to its end even if the caller goes away (the provision has its
     * timeout), so that no row is left in `claiming` for the plan's claim timeout to find.
     */
    const settle = (
      request: Request,
      instance: Instance,
      progress: (p: ClaimProgress) => Effect.Effect<void>,
      failures: ReadonlyArray<string>
    ): Effect.Effect<Either.Either<ClaimResult<Result>, ReadonlyArray<string>>, ClaimError> =>
      Effect.gen(function*() {
        yield* progress(ClaimProgress.Claimed({ instanceId: instance.id }))
        yield* progress(ClaimProgress.Provisioning({ instanceId: instance.id }))
        // A fiber of its own, which the caller's going away does not reach; its timeout bounds the wait.
        const provisioned = yield* withinTimeout(runtime.provision(instance, request))
        const outcome = yield* Effect.either(Option.getOrElse(
          provisioned,
          () => Effect.fail(new ProvisionUnknownError({ instanceId: instance.id, message: `no answer within ${Duration.format(options.timeout)}` }))
        ))
        if (outcome._tag === "Right") {
          const now = new Date(yield* Clock.currentTimeMillis)
          const result: Result = outcome.right
          const patch: InstancePatch = runtime.attributes === undefined
            ? { claimedAt: now }
            : { claimedAt: now, attributes: runtime.attributes(request, result) }
          const status = runtime.boundAs?.(result) ?? "claimed"
          if (!(yield* recordClaimed({ id: instance.id, from: ["claiming"], to: status, patch }))) {
            // Only the plan's claim timeout moves a `claiming` row: this claim outlived it.
            return yield* new ClaimFailedError({ attempts: failures.length + 1, message: `instance ${instance.id} was provisioned after its claim timed out` })
          }
          return Either.right({ result, instance: applyPatch(instance, patch, { status, statusChangedAt: now }) })
        }
        const error = outcome.left
        if (error._tag === "ProvisionRejectedError") {
          // The request itself was refused and the instance is untouched: it may serve the next claim.
          yield* options.room.giveBack(instance)
          return yield* error
        }
        // Bound (409) or unknown: it must not serve another claim.
        yield* Effect.ignore(store.transition({
          id: instance.id,
          from: ["claiming"],
          to: "crashed",
          patch: { lastError: `claim failed: ${describeError(error)}` }
        }))
        const next = [...failures, `${instance.id}: ${describeError(error)}`]
        // A hung runtime took the claim's whole time: it is answered now, not after as long again on another instance.
        if (next.length >= options.attempts || Option.isNone(provisioned)) {
          return yield* new ClaimFailedError({ attempts: next.length, message: `provisioning failed on every attempt (${next.join("; ")})` })
        }
        return Either.left(next)
      })

    const attempt = (
      request: Request,
      waiting: Waiting | undefined,
      progress: (p: ClaimProgress) => Effect.Effect<void>,
      failures: ReadonlyArray<string>
    ): Effect.Effect<ClaimResult<Result>, ClaimError> =>
      // Interruptible while it waits for a row; from the moment it holds one, it settles it.
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const claimed = yield* restore(take(waiting, progress))
          if (Option.isNone(claimed)) {
            return yield* failures.length > 0
              ? new ClaimFailedError({ attempts: failures.length, message: `provisioning failed on every attempt (${failures.join("; ")})` })
              : new NoIdleInstanceError({
                pool: spec.name,
                message: waiting === undefined
                  ? "no idle instance; the pool is being refilled"
                  : "no instance became ready in the time the claim could wait; the pool is being refilled"
              })
          }
          const instance = claimed.value
          settling.add(instance.id)
          return yield* settle(request, instance, progress, failures).pipe(Effect.ensuring(Effect.sync(() => settling.delete(instance.id))))
        })
      ).pipe(Effect.flatMap(Either.match({ onRight: Effect.succeed, onLeft: (next) => attempt(request, waiting, progress, next) })))

    /** The runtime's own schema says what a claim may carry. Checked before anything else: a bad one changes nothing. */
    const check = (input: Request): Effect.Effect<Request, InvalidClaimError> =>
      validate(input).pipe(
        Effect.mapError((error) => new InvalidClaimError({ pool: spec.name, message: `not a claim this pool's runtime takes: ${error.message}` }))
      )

    const claim = Effect.fn("Controller.claim")(function*(request: Request, claimOptions: ClaimOptions = {}) {
      const started = yield* Clock.currentTimeMillis
      const waitMs = Math.min(Math.max(0, claimOptions.waitMs ?? 0), MAX_WAIT_MS)
      const waiting = waitMs > 0 ? { ticket: yield* options.room.ticket, deadline: started + waitMs } : undefined
      const progress = claimOptions.onProgress ?? (() => Effect.void)
      return yield* attempt(request, waiting, progress, []).pipe(
        Effect.tapBoth({
          onFailure: (error) => Metric.increment(metrics.claimsWithOutcome(error._tag)),
          onSuccess: () => Metric.increment(metrics.claimsWithOutcome("claimed"))
        }),
        Effect.ensuring(
          Effect.gen(function*() {
            const elapsed = (yield* Clock.currentTimeMillis) - started
            yield* Metric.update(metrics.claimDuration, elapsed / 1000)
            // Event-driven backfill: every claim, won or lost, starts a pass now.
            yield* options.trigger
          })
        )
      )
    })
    return { check, claim, settling: Effect.sync((): ReadonlySet<string> => new Set(settling)) }
  })

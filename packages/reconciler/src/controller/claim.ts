/**
 * Claims: take the oldest idle instance atomically, provision it, record the outcome.
 * An instance whose outcome is unknown or that is already bound never goes back to idle (DESIGN §8):
 * the seed's endless claim loop came from doing exactly that.
 */
import { Clock, Duration, Effect, Metric, Option } from "effect"
import { Instance } from "../domain/instance.js"
import type { PoolSpec } from "../domain/pool-spec.js"
import { ClaimFailedError, NoIdleInstanceError, ProvisionUnknownError } from "../errors.js"
import { InstanceRuntime, InstanceStore, type Transition } from "../services.js"
import { describeError } from "./apply.js"
import type { ClaimError, ClaimRequest, ClaimResult } from "./controller.js"
import { makeGroupCommit } from "./group-commit.js"
import * as metrics from "./metrics.js"

export const makeClaim = (
  spec: PoolSpec,
  options: { readonly attempts: number; readonly timeout: Duration.DurationInput; readonly trigger: Effect.Effect<void> }
) =>
  Effect.gen(function*() {
    const store = yield* InstanceStore
    const runtime = yield* InstanceRuntime

    // Claims that arrive together take their rows in one statement and record their outcomes in another.
    const takeIdle = yield* makeGroupCommit(
      (requests: ReadonlyArray<void>) =>
        Effect.map(store.claimIdle(spec.name, requests.length), (rows) => requests.map((_, i) => Option.fromNullable(rows[i]))),
      {
        maxBatch: 64,
        // Its claimer went away before it was provisioned: it is as idle as it was.
        undeliverable: Option.match({
          onNone: () => Effect.void,
          onSome: (row) => Effect.ignore(store.transition({ id: row.id, from: ["claiming"], to: "idle" }))
        })
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

    const attempt = (request: ClaimRequest, failures: ReadonlyArray<string>): Effect.Effect<ClaimResult, ClaimError> =>
      Effect.gen(function*() {
        const claimed = yield* takeIdle()
        if (Option.isNone(claimed)) {
          return yield* failures.length === 0
            ? new NoIdleInstanceError({ pool: spec.name, message: "no idle instance; the pool is being refilled" })
            : new ClaimFailedError({ attempts: failures.length, message: `provisioning failed on every attempt (${failures.join("; ")})` })
        }
        const instance = claimed.value
        const outcome = yield* runtime.provision(instance, request).pipe(
          Effect.timeoutFail({
            duration: options.timeout,
            onTimeout: () => new ProvisionUnknownError({ instanceId: instance.id, message: `no answer within ${Duration.format(options.timeout)}` })
          }),
          Effect.either
        )
        if (outcome._tag === "Right") {
          const now = new Date(yield* Clock.currentTimeMillis)
          const patch = {
            agentName: request.agentName,
            instructions: request.instructions,
            conversationId: outcome.right.conversationId,
            inviteUrl: outcome.right.inviteUrl,
            claimedAt: now,
            sourceBranch: request.sourceBranch ?? null
          }
          if (!(yield* recordClaimed({ id: instance.id, from: ["claiming"], to: "claimed", patch }))) {
            // Only the plan's claim timeout moves a `claiming` row: this claim outlived it.
            return yield* new ClaimFailedError({ attempts: failures.length + 1, message: `instance ${instance.id} was provisioned after its claim timed out` })
          }
          return { ...outcome.right, instance: new Instance({ ...instance, ...patch, status: "claimed", statusChangedAt: now }, { disableValidation: true }) }
        }
        const error = outcome.left
        if (error._tag === "ProvisionRejectedError") {
          // The request itself was refused and the instance is untouched: it may serve the next claim.
          yield* Effect.ignore(store.transition({ id: instance.id, from: ["claiming"], to: "idle" }))
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
        if (next.length >= options.attempts) {
          return yield* new ClaimFailedError({ attempts: next.length, message: `provisioning failed on every attempt (${next.join("; ")})` })
        }
        return yield* attempt(request, next)
      })

    return Effect.fn("Controller.claim")(function*(request: ClaimRequest) {
      const started = yield* Clock.currentTimeMillis
      return yield* attempt(request, []).pipe(
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
  })

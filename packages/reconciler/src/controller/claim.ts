/**
 * Claims: take the oldest idle instance atomically, provision it, record the outcome.
 * An instance whose outcome is unknown or that is already bound never goes back to idle (DESIGN §8):
 * the seed's endless claim loop came from doing exactly that.
 */
import { Clock, Duration, Effect, Metric, Option } from "effect"
import type { PoolSpec } from "../domain/pool-spec.js"
import { ClaimFailedError, NoIdleInstanceError, ProvisionUnknownError } from "../errors.js"
import { InstanceRuntime, InstanceStore } from "../services.js"
import { describeError } from "./apply.js"
import type { ClaimError, ClaimRequest, ClaimResult } from "./controller.js"
import * as metrics from "./metrics.js"

export const makeClaim = (
  spec: PoolSpec,
  options: { readonly attempts: number; readonly timeout: Duration.DurationInput; readonly trigger: Effect.Effect<void> }
) =>
  Effect.gen(function*() {
    const store = yield* InstanceStore
    const runtime = yield* InstanceRuntime

    const attempt = (request: ClaimRequest, failures: ReadonlyArray<string>): Effect.Effect<ClaimResult, ClaimError> =>
      Effect.gen(function*() {
        const claimed = yield* store.claimIdle(spec.name)
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
          const row = yield* store.transition({
            id: instance.id,
            from: ["claiming"],
            to: "claimed",
            patch: {
              agentName: request.agentName,
              instructions: request.instructions,
              conversationId: outcome.right.conversationId,
              inviteUrl: outcome.right.inviteUrl,
              claimedAt: now,
              sourceBranch: request.sourceBranch ?? null
            }
          }).pipe(
            // Only the plan's claim timeout moves a `claiming` row: this claim outlived it.
            Effect.catchTag("StaleStatusError", () =>
              new ClaimFailedError({ attempts: failures.length + 1, message: `instance ${instance.id} was provisioned after its claim timed out` }))
          )
          return { ...outcome.right, instance: row }
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
          onFailure: (error) => Metric.increment(Metric.tagged(metrics.claims, "outcome", error._tag)),
          onSuccess: () => Metric.increment(Metric.tagged(metrics.claims, "outcome", "claimed"))
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

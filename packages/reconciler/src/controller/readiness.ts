/**
 * The readiness loop: probes `starting` instances every `interval` (or at once when nudged, e.g. by a
 * "deployed" webhook) and marks the ready ones idle, as the leader, between passes. It sleeps while no row is
 * starting: a pass or a nudge wakes it. Health probes hit the instances, not the platform's API.
 */
import { Duration, Effect, Queue, Ref, type Scope } from "effect"
import type { PoolSpec } from "../domain/pool-spec.js"
import { readinessTargets, readyActions } from "../plan/readiness.js"
import { HealthProbe, InstanceStore, Leadership } from "../services.js"
import { transitionOf } from "./apply.js"

export interface Readiness {
  /** Probe now (coalesced with a round in progress). */
  readonly nudge: Effect.Effect<void>
  /** A pass saw (or made) starting rows: keep probing. */
  readonly expect: Effect.Effect<void>
}

export const makeReadiness = (
  spec: PoolSpec,
  options: {
    readonly interval: Duration.Duration
    readonly concurrency: number
    /** Run when a round marked rows idle (claims waiting for one are told). */
    readonly onIdle: Effect.Effect<void>
  }
): Effect.Effect<Readiness, never, InstanceStore | HealthProbe | Leadership | Scope.Scope> =>
  Effect.gen(function*() {
    const store = yield* InstanceStore
    const health = yield* HealthProbe
    const leadership = yield* Leadership
    const wakeups = yield* Queue.sliding<void>(1)
    /** Whether some row may be starting; rounds stop while none is. */
    const pending = yield* Ref.make(true)

    const round = Effect.gen(function*() {
      const rows = yield* store.list(spec.name)
      const targets = readinessTargets(spec, rows)
      if (targets.length === 0) return yield* Ref.set(pending, false)
      const probed = yield* Effect.forEach(targets, (t) => Effect.map(health.check(t), (h) => [t.id, h] as const), { concurrency: options.concurrency })
      const transitions = readyActions(spec, rows, new Map(probed)).flatMap((action) => transitionOf(action) ?? [])
      if (transitions.length === 0) return
      if ((yield* store.transitionMany(transitions)).length > 0) yield* options.onIdle
    }).pipe(
      // A failed round (store down) is retried by the next one; passes report store failures.
      Effect.ignore,
      leadership.whileLeader,
      Effect.withSpan("Controller.readiness", { attributes: { pool: spec.name } })
    )

    const loop = Effect.raceFirst(Queue.take(wakeups), Effect.sleep(options.interval)).pipe(
      Effect.zipRight(Ref.get(pending)),
      Effect.flatMap((maybe) => (maybe ? round : Effect.void)),
      Effect.forever
    )
    yield* Effect.forkScoped(loop)

    return {
      nudge: Ref.set(pending, true).pipe(Effect.zipRight(Queue.offer(wakeups, undefined)), Effect.asVoid),
      expect: Ref.set(pending, true)
    }
  })

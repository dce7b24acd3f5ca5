/**
 * Actions that fail pass after pass (rule 12): each is counted by what it acts on (`actionKey`), backs off on a
 * Schedule (exponential, capped), and, from its third failure in a row, is reported as stuck with its reason
 * (`/metrics`, the API, the dashboard) instead of failing in silence every pass.
 */
import { Chunk, Duration, Effect, Metric, Ref, Schedule } from "effect"
import type { Action } from "../domain/observation.js"
import type { PoolSpec } from "../domain/pool-spec.js"
import { actionKey } from "../plan/plan.js"
import { type ActionOutcome, describeError, errorKind } from "./apply.js"
import * as metrics from "./metrics.js"

/** Failures in a row after which an action is reported as stuck. */
export const STUCK_AFTER = 3

/** An action that keeps failing: what it is, how often it failed in a row, why, and when it is tried again. */
export interface StuckAction {
  readonly key: string
  readonly kind: Action["_tag"]
  readonly failures: number
  /** The error's kind (its tag), for metrics. */
  readonly errorKind: string
  /** The last error, one line, no secrets. */
  readonly reason: string
  readonly since: Date
  readonly retryAt: Date
}

/** 5 s, 10 s, 20 s, … up to 5 minutes between tries of one failing action. */
const backoff = Schedule.exponential(Duration.seconds(5), 2).pipe(Schedule.map((delay) => Duration.min(delay, Duration.minutes(5))))

/** The wait after the `failures`-th failure in a row: the schedule's output at that step. */
const delayAfter = (failures: number) =>
  Effect.map(Schedule.run(backoff, 0, Array.from({ length: failures }, () => undefined)), (delays) =>
    Duration.toMillis(Chunk.last(delays).pipe((last) => last._tag === "Some" ? last.value : Duration.zero)))

export const makeFailingActions = (spec: PoolSpec) =>
  Effect.gen(function*() {
    const failing = yield* Ref.make(new Map<string, StuckAction>())
    /** The metric series set last time, so that an action no longer stuck goes back to zero. */
    const reported = yield* Ref.make(new Set<string>())

    /** What the plan needs: failures in a row and the end of each back-off. */
    const backoffs = Effect.map(Ref.get(failing), (map) =>
      new Map([...map].map(([key, f]) => [key, { failures: f.failures, retryAt: f.retryAt.getTime() }] as const)))

    /**
     * Records a pass: a failure extends its action's back-off, a success ends it, and an action the plan no longer
     * proposes once its back-off is over is forgotten (the world changed: level-triggered).
     */
    const record = (now: number, outcomes: ReadonlyArray<ActionOutcome>) =>
      Effect.gen(function*() {
        const before = yield* Ref.get(failing)
        const next = new Map<string, StuckAction>()
        for (const [key, f] of before) if (f.retryAt.getTime() > now) next.set(key, f)
        for (const { action, error } of outcomes) {
          const key = actionKey(action)
          if (key === undefined) continue
          if (error === undefined) {
            next.delete(key)
            continue
          }
          const failures = (before.get(key)?.failures ?? 0) + 1
          next.set(key, {
            key,
            kind: action._tag,
            failures,
            errorKind: errorKind(error),
            reason: describeError(error),
            since: before.get(key)?.since ?? new Date(now),
            retryAt: new Date(now + (yield* delayAfter(failures)))
          })
        }
        yield* Ref.set(failing, next)
        yield* report(next)
      })

    const report = (now: ReadonlyMap<string, StuckAction>) =>
      Effect.gen(function*() {
        const counts = new Map<string, { kind: string; reason: string; count: number }>()
        for (const f of now.values()) {
          if (f.failures < STUCK_AFTER) continue
          const series = `${f.kind}\u0000${f.errorKind}`
          const entry = counts.get(series) ?? { kind: f.kind, reason: f.errorKind, count: 0 }
          counts.set(series, { ...entry, count: entry.count + 1 })
        }
        const previous = yield* Ref.getAndSet(reported, new Set(counts.keys()))
        const gauge = (kind: string, reason: string) =>
          metrics.stuckActions.pipe(Metric.tagged("pool", spec.name), Metric.tagged("action", kind), Metric.tagged("reason", reason))
        for (const series of previous) {
          if (counts.has(series)) continue
          const [kind, reason] = series.split("\u0000") as [string, string]
          yield* Metric.set(gauge(kind, reason), 0)
        }
        for (const { count, kind, reason } of counts.values()) yield* Metric.set(gauge(kind, reason), count)
      })

    /** The actions failing `STUCK_AFTER` times in a row or more. */
    const stuck = Effect.map(Ref.get(failing), (map) => [...map.values()].filter((f) => f.failures >= STUCK_AFTER))

    return { backoffs, record, stuck }
  })

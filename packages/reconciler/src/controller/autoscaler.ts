/**
 * The measuring half of autoscaling: claim arrivals and create → idle times, fed to the pure `decide`
 * (sizing/sizing.ts). Claims seen by this replica are counted here; rows add what other replicas claimed.
 * Ready times come from rows too: an idle row became idle at its `statusChangedAt`, whoever marked it (a pass
 * or the readiness loop), so each pass records the idle rows it has not seen yet, and a restarted leader
 * starts from the instances idle now.
 */
import { Effect, Metric, Option, Ref } from "effect"
import type { Instance } from "../domain/instance.js"
import type { PoolSpec } from "../domain/pool-spec.js"
import {
  decide,
  initialSizingState,
  LONG_WINDOW_MS,
  READY_PERCENTILE,
  SHORT_WINDOW_MS,
  type SizingDecision,
  type SizingPolicy
} from "../sizing/sizing.js"
import * as metrics from "./metrics.js"

/** Ready times of this many recent creates are kept. */
const READY_SAMPLES = 64

/** The autoscale part of a spec, with `maxIdle` resolved; undefined for a fixed pool. */
export const sizingPolicy = (spec: PoolSpec): SizingPolicy | undefined =>
  spec.autoscale === undefined ? undefined : {
    minIdle: spec.minIdle,
    maxIdle: Math.min(spec.autoscale.maxIdle ?? spec.maxTotal, spec.maxTotal),
    targetMissRate: spec.autoscale.targetMissRate,
    scaleDownAfterMs: spec.autoscale.scaleDownAfterMs
  }

/**
 * Claim arrivals in one-second buckets over the long window. Mutable on purpose: it is updated on every
 * claim, the hot path, where copying a window of timestamps per claim would cost more than the claim.
 */
class ArrivalBuckets {
  private readonly seconds = LONG_WINDOW_MS / 1000
  private readonly counts = new Int32Array(this.seconds)
  private readonly stamps = new Float64Array(this.seconds).fill(-1)

  record(nowMs: number): void {
    const second = Math.floor(nowMs / 1000)
    const i = second % this.seconds
    if (this.stamps[i] !== second) {
      this.stamps[i] = second
      this.counts[i] = 0
    }
    this.counts[i]!++
  }

  /** Arrivals in the last `windowMs` (whole seconds, the current one included). */
  count(nowMs: number, windowMs: number): number {
    const newest = Math.floor(nowMs / 1000)
    const oldest = newest - Math.ceil(windowMs / 1000)
    let total = 0
    for (let i = 0; i < this.seconds; i++) {
      const stamp = this.stamps[i]!
      if (stamp > oldest && stamp <= newest) total += this.counts[i]!
    }
    return total
  }
}

const claimedSince = (rows: ReadonlyArray<Instance>, since: number) =>
  rows.reduce((n, row) => (row.claimedAt !== null && row.claimedAt.getTime() > since ? n + 1 : n), 0)

const tagged = (gauge: Metric.Metric.Gauge<number>, spec: PoolSpec, key: string, value: string) =>
  gauge.pipe(Metric.tagged("pool", spec.name), Metric.tagged(key, value))

export const makeAutoscaler = (spec: PoolSpec, policy: SizingPolicy) =>
  Effect.gen(function*() {
    const arrivals = new ArrivalBuckets()
    const readyTimes = yield* Ref.make<ReadonlyArray<{ readonly id: string; readonly ms: number }>>([])
    const state = yield* Ref.make(initialSizingState)
    const last = yield* Ref.make(Option.none<SizingDecision>())

    /** Every claim attempt is demand, a missed one most of all. */
    const recordArrival = (now: number) => Effect.sync(() => arrivals.record(now))

    /** The sizing decision for this observation; a pass commits it (its hysteresis state), a dry run does not. */
    const size = Effect.fn("Autoscaler.size")(function*(rows: ReadonlyArray<Instance>, now: number, commit: boolean) {
      const mine = rows.filter((row) => row.pool === spec.name)
      const kept = yield* Ref.get(readyTimes)
      const known = new Set(kept.map((s) => s.id))
      const fresh = mine
        .filter((row) => row.status === "idle" && !known.has(row.id))
        .sort((a, b) => a.statusChangedAt.getTime() - b.statusChangedAt.getTime())
        .map((row) => ({ id: row.id, ms: row.statusChangedAt.getTime() - row.createdAt.getTime() }))
      const samples = fresh.length === 0 ? kept : [...kept, ...fresh].slice(-READY_SAMPLES)
      const count = (windowMs: number) => Math.max(arrivals.count(now, windowMs), claimedSince(mine, now - windowMs))
      const step = decide(policy, {
        now,
        claimsShort: count(SHORT_WINDOW_MS),
        claimsLong: count(LONG_WINDOW_MS),
        readyTimes: samples.flatMap((s) => (s.ms >= 0 ? [s.ms] : []))
      }, yield* Ref.get(state))
      yield* Ref.set(last, Option.some(step.decision))
      if (commit) {
        yield* Ref.set(state, step.state)
        yield* Ref.set(readyTimes, samples)
        const { decision } = step
        yield* Effect.all([
          Metric.set(tagged(metrics.autoscaleClaimRate, spec, "window", "short"), decision.rateShort),
          Metric.set(tagged(metrics.autoscaleClaimRate, spec, "window", "long"), decision.rateLong),
          Metric.set(tagged(metrics.autoscaleClaimRate, spec, "window", "sized"), decision.rate),
          Metric.set(tagged(metrics.autoscaleReadySeconds, spec, "quantile", String(READY_PERCENTILE / 100)), decision.readyMs / 1000),
          Metric.set(tagged(metrics.autoscaleWarm, spec, "decision", "desired"), decision.desired),
          Metric.set(tagged(metrics.autoscaleWarm, spec, "decision", "target"), decision.target)
        ], { discard: true })
      }
      return step.decision
    })

    return { recordArrival, size, last: Ref.get(last) }
  })

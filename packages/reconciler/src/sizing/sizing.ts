/**
 * Adaptive pool sizing (DESIGN rule 11): how many warm instances (idle + starting + creating) the pool needs,
 * from how fast claims arrive and how long a new instance takes to become ready. Pure like `plan`: no clock,
 * no Effect; the controller measures, this decides.
 *
 * The model: every claim takes an idle instance and starts a replacement that is ready one ready time T later.
 * Claims arrive as a Poisson process of rate λ, so the claims arriving during one ready time are Poisson(λ·T);
 * with n warm instances they all find an idle one when at most n arrive. The desired count is the smallest n
 * with P(Poisson(λ·T) ≤ n) ≥ 1 − targetMissRate, T being a high percentile (p90) of measured ready times, and
 * never less than the mean demand ⌈λ·T⌉ (the claimed-demand floor), within [minIdle, maxIdle].
 */
import { poissonQuantile, poissonUpperTail } from "./poisson.js"

/** What autoscaling needs from a pool's spec. */
export interface SizingPolicy {
  readonly minIdle: number
  readonly maxIdle: number
  readonly targetMissRate: number
  readonly scaleDownAfterMs: number
}

/** A burst is seen within this window… */
export const SHORT_WINDOW_MS = 60_000
/** …and the steady rate over this one, so noise in the short window is not chased. */
export const LONG_WINDOW_MS = 15 * 60_000
/** The short window overrides the long one only when its count is this unlikely at the long window's rate. */
const BURST_SIGNIFICANCE = 0.001
/** Which percentile of recent ready times sizes the pool. */
export const READY_PERCENTILE = 90
/** The ready time assumed until one is measured. */
export const ASSUMED_READY_MS = 120_000

/** What the controller measured. */
export interface SizingInputs {
  readonly now: number
  /** Claims (served or missed) in the last `SHORT_WINDOW_MS`. */
  readonly claimsShort: number
  /** Claims (served or missed) in the last `LONG_WINDOW_MS`. */
  readonly claimsLong: number
  /** Recent create → idle durations, in milliseconds. */
  readonly readyTimes: ReadonlyArray<number>
}

/** The decision and everything it came from: what `GET /api/pool/plan`, the dashboard and `/metrics` show. */
export interface SizingDecision {
  /** Claims per second the pool is sized for: the long window's rate, or the short one's in a burst. */
  readonly rate: number
  readonly rateShort: number
  readonly rateLong: number
  /** The short window's count is implausible at the long window's rate. */
  readonly burst: boolean
  /** The `READY_PERCENTILE`th percentile of `readySamples` ready times (`ASSUMED_READY_MS` without any). */
  readonly readyMs: number
  readonly readySamples: number
  /** Claims expected during one ready time (λ·T). */
  readonly demand: number
  /** Warm instances the current demand needs, within [minIdle, maxIdle]. */
  readonly desired: number
  /**
   * Warm instances to keep: up to `desired` at once; down to the highest `desired` of the last
   * `scaleDownAfterMs`, once that is lower by at least `scaleDownStep` (hysteresis).
   */
  readonly target: number
  /** The highest `desired` of the last `scaleDownAfterMs`: where the target may fall to. */
  readonly windowHigh: number
}

/** The current target, and the recent desired counts that may still be the maximum of the scale-down window. */
export interface SizingState {
  readonly target: number
  /** Oldest (and highest) first. */
  readonly recent: ReadonlyArray<{ readonly at: number; readonly desired: number }>
}

export const initialSizingState: SizingState = { target: 0, recent: [] }

/**
 * A lower target must be lower by at least this much: the rate measured over a window wobbles by a few
 * percent at a steady rate, and following each wobble down would drain and recreate instances for nothing.
 */
export const scaleDownStep = (target: number): number => Math.max(1, Math.round(target / 10))

const clamp = (n: number, low: number, high: number) => Math.min(Math.max(n, low), high)

/** The upper bound of warm instances: never below the floor, even if a spec says otherwise. */
const ceilingOf = (policy: SizingPolicy) => Math.max(policy.minIdle, policy.maxIdle)

/** Warm instances needed for `rate` claims/s and a ready time of `readyMs`, within [minIdle, maxIdle]. */
export const warmFor = (policy: SizingPolicy, rate: number, readyMs: number): number => {
  const ceiling = ceilingOf(policy)
  const demand = Math.max(0, rate) * Math.max(0, readyMs) / 1000
  const quantile = poissonQuantile(demand, 1 - policy.targetMissRate, ceiling)
  return clamp(Math.max(quantile, Math.ceil(demand)), policy.minIdle, ceiling)
}

/** Nearest-rank percentile; `fallback` for no samples. */
export const percentile = (samples: ReadonlyArray<number>, p: number, fallback: number): number => {
  if (samples.length === 0) return fallback
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

/** The rate to size for: the long window's, unless the short window shows a burst it cannot explain. */
export const claimRate = (claimsShort: number, claimsLong: number) => {
  const rateShort = claimsShort / (SHORT_WINDOW_MS / 1000)
  const rateLong = Math.max(claimsLong, claimsShort) / (LONG_WINDOW_MS / 1000)
  const burst = rateShort > rateLong &&
    poissonUpperTail(rateLong * (SHORT_WINDOW_MS / 1000), claimsShort) < BURST_SIGNIFICANCE
  return { rate: burst ? rateShort : rateLong, rateShort, rateLong, burst }
}

/** One sizing step: the decision now, and the state the next step starts from. */
export const decide = (
  policy: SizingPolicy,
  inputs: SizingInputs,
  state: SizingState
): { readonly decision: SizingDecision; readonly state: SizingState } => {
  const { burst, rate, rateLong, rateShort } = claimRate(inputs.claimsShort, inputs.claimsLong)
  const readyMs = percentile(inputs.readyTimes, READY_PERCENTILE, ASSUMED_READY_MS)
  const desired = warmFor(policy, rate, readyMs)
  // A monotone queue: an entry matters only while no later entry is at least as high.
  const windowStart = inputs.now - policy.scaleDownAfterMs
  const kept = state.recent.filter((entry) => entry.at > windowStart && entry.desired > desired)
  const recent = [...kept, { at: inputs.now, desired }]
  const windowHigh = recent[0]!.desired
  const previous = clamp(state.target, policy.minIdle, ceilingOf(policy))
  const target = windowHigh >= previous || windowHigh <= previous - scaleDownStep(previous) ? windowHigh : previous
  const decision: SizingDecision = {
    rate,
    rateShort,
    rateLong,
    burst,
    readyMs,
    readySamples: inputs.readyTimes.length,
    demand: (rate * readyMs) / 1000,
    desired,
    target,
    windowHigh
  }
  return { decision, state: { target, recent } }
}

/** "λ = 0.4/s, ready in 95 s (p90) → 45 warm" */
export const describeSizing = (decision: SizingDecision): string =>
  `λ = ${Number(decision.rate.toPrecision(2))}/s, ready in ${Math.round(decision.readyMs / 1000)} s (p${READY_PERCENTILE}) → ${decision.target} warm`

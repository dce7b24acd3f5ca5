/**
 * DESIGN rule 11: the sizing function, property by property. `decide` is checked against a brute-force
 * reference of its specification (the target is the highest desired count of the scale-down window).
 */
import { describe, expect, it } from "@effect/vitest"
import * as fc from "effect/FastCheck"
import {
  ASSUMED_READY_MS,
  claimRate,
  decide,
  describeSizing,
  initialSizingState,
  LONG_WINDOW_MS,
  percentile,
  scaleDownStep,
  poissonQuantile,
  poissonUpperTail,
  SHORT_WINDOW_MS,
  type SizingPolicy,
  warmFor
} from "../src/index.js"

const runs = { fastCheck: { numRuns: 300 } }

const arbPolicy: fc.Arbitrary<SizingPolicy> = fc
  .record({
    minIdle: fc.integer({ min: 0, max: 20 }),
    extra: fc.integer({ min: 0, max: 300 }),
    targetMissRate: fc.double({ min: 0.001, max: 0.5, noNaN: true }),
    scaleDownAfterMs: fc.integer({ min: 1, max: 60 }).map((m) => m * 60_000)
  })
  .map(({ extra, ...rest }) => ({ ...rest, maxIdle: rest.minIdle + extra }))

const arbRate = fc.double({ min: 0, max: 5, noNaN: true })
const arbReadyMs = fc.integer({ min: 1_000, max: 600_000 })

/** P(X ≤ n) for X ~ Poisson(mean), summed term by term (small means only). */
const cdf = (mean: number, n: number) => {
  let term = Math.exp(-mean)
  let sum = term
  for (let k = 1; k <= n; k++) {
    term *= mean / k
    sum += term
  }
  return sum
}

describe("poisson", () => {
  it.prop("the quantile is the smallest count whose CDF reaches the probability", {
    mean: fc.double({ min: 0.01, max: 50, noNaN: true }),
    p: fc.double({ min: 0.5, max: 0.9999, noNaN: true })
  }, ({ mean, p }) => {
    const n = poissonQuantile(mean, p, 10_000)
    expect(cdf(mean, n)).toBeGreaterThanOrEqual(p - 1e-12)
    if (n > 0) expect(cdf(mean, n - 1)).toBeLessThan(p + 1e-12)
    expect(poissonUpperTail(mean, n + 1)).toBeCloseTo(1 - cdf(mean, n), 9)
  }, runs)

  it("stays finite for means far past where e^-μ underflows", () => {
    // Poisson(5000) is close to Normal(5000, 71²): its 99th percentile is near 5000 + 2.33·71 ≈ 5165.
    const n = poissonQuantile(5_000, 0.99, 100_000)
    expect(n).toBeGreaterThan(5_140)
    expect(n).toBeLessThan(5_190)
    expect(poissonQuantile(5_000, 0.99, 300)).toBe(300)
    expect(poissonQuantile(0, 0.99, 10)).toBe(0)
  })
})

describe("warmFor", () => {
  it.prop("stays within [minIdle, maxIdle]", { policy: arbPolicy, rate: arbRate, ready: arbReadyMs }, ({ policy, rate, ready }) => {
    const n = warmFor(policy, rate, ready)
    expect(n).toBeGreaterThanOrEqual(policy.minIdle)
    expect(n).toBeLessThanOrEqual(policy.maxIdle)
  }, runs)

  it.prop("is monotone in the claim rate and in the ready time", {
    policy: arbPolicy,
    rates: fc.tuple(arbRate, arbRate),
    readies: fc.tuple(arbReadyMs, arbReadyMs)
  }, ({ policy, rates: [r1, r2], readies: [t1, t2] }) => {
    const [lowRate, highRate] = r1 <= r2 ? [r1, r2] : [r2, r1]
    const [shortReady, longReady] = t1 <= t2 ? [t1, t2] : [t2, t1]
    expect(warmFor(policy, lowRate, t1)).toBeLessThanOrEqual(warmFor(policy, highRate, t1))
    expect(warmFor(policy, r1, shortReady)).toBeLessThanOrEqual(warmFor(policy, r1, longReady))
  }, runs)

  it.prop("never falls below the claimed-demand floor ⌈λ·T⌉ (capped by maxIdle)", { policy: arbPolicy, rate: arbRate, ready: arbReadyMs }, ({ policy, rate, ready }) => {
    expect(warmFor(policy, rate, ready)).toBeGreaterThanOrEqual(Math.min(policy.maxIdle, Math.ceil((rate * ready) / 1000)))
  }, runs)

  it.prop("meets the target miss rate for one ready time's claims, unless maxIdle caps it", { policy: arbPolicy, rate: arbRate, ready: arbReadyMs }, ({ policy, rate, ready }) => {
    const n = warmFor(policy, rate, ready)
    if (n < policy.maxIdle) expect(poissonUpperTail((rate * ready) / 1000, n + 1)).toBeLessThanOrEqual(policy.targetMissRate + 1e-9)
  }, runs)

  it("sizes a concrete pool: 0.4 claims/s, ready in 95 s, 1 % misses", () => {
    // λ·T = 38; Poisson(38)'s 99th percentile is 53.
    expect(warmFor({ minIdle: 3, maxIdle: 200, targetMissRate: 0.01, scaleDownAfterMs: 600_000 }, 0.4, 95_000)).toBe(53)
  })
})

describe("claimRate", () => {
  it("follows the long window at a steady rate, and the short one in a burst", () => {
    // 0.1/s: 6 claims a minute, 90 in 15 minutes.
    expect(claimRate(6, 90)).toMatchObject({ burst: false, rate: 0.1 })
    expect(claimRate(9, 90)).toMatchObject({ burst: false, rate: 0.1 }) // noise, not a burst
    expect(claimRate(60, 144)).toMatchObject({ burst: true, rate: 1 }) // 10× for a minute
    expect(claimRate(0, 90).rate).toBe(0.1) // a quiet minute does not lower it
  })

  it.prop("is at least the long window's rate", { short: fc.nat(500), long: fc.nat(5_000) }, ({ long, short }) => {
    const { rate } = claimRate(short, long)
    expect(rate).toBeGreaterThanOrEqual(long / (LONG_WINDOW_MS / 1000))
    expect(rate).toBeLessThanOrEqual(Math.max(long / (LONG_WINDOW_MS / 1000), short / (SHORT_WINDOW_MS / 1000)))
  }, runs)
})

describe("decide", () => {
  const arbSteps = fc.array(
    fc.record({ gapMs: fc.integer({ min: 1_000, max: 300_000 }), claimsShort: fc.nat(120), claimsLong: fc.nat(1_500), ready: arbReadyMs }),
    { minLength: 1, maxLength: 40 }
  )

  it.prop("goes up at once, down only to the highest demand of the last scaleDownAfterMs, and only by a real step", { policy: arbPolicy, steps: arbSteps }, ({ policy, steps }) => {
    let state = initialSizingState
    let previous = policy.minIdle
    let now = 0
    const history: Array<{ at: number; desired: number }> = []
    for (const step of steps) {
      now += step.gapMs
      const { decision, state: next } = decide(policy, { now, claimsShort: step.claimsShort, claimsLong: step.claimsLong, readyTimes: [step.ready] }, state)
      state = next
      history.push({ at: now, desired: decision.desired })
      const windowHigh = Math.max(...history.filter((h) => h.at > now - policy.scaleDownAfterMs).map((h) => h.desired))
      expect(decision.windowHigh).toBe(windowHigh)
      // Never below any demand of the window: a rise holds for scaleDownAfterMs at least.
      expect(decision.target).toBeGreaterThanOrEqual(windowHigh)
      expect(decision.target).toBeGreaterThanOrEqual(policy.minIdle)
      expect(decision.target).toBeLessThanOrEqual(policy.maxIdle)
      if (decision.target > windowHigh) {
        // Held: the target is the previous one, and the window's demand is within one step of it.
        expect(decision.target).toBe(previous)
        expect(previous - windowHigh).toBeLessThan(scaleDownStep(previous))
      }
      previous = decision.target
    }
  }, runs)

  it("does not flap on a steady Poisson rate: few falls in four hours, none within scaleDownAfterMs of a rise", () => {
    const policy = { minIdle: 1, maxIdle: 200, targetMissRate: 0.01, scaleDownAfterMs: 600_000 }
    let seed = 7
    const random = () => {
      seed = (seed * 16807) % 2147483647
      return seed / 2147483647
    }
    // Claims at 0.2/s for four hours, one pass every 30 s.
    const arrivals: Array<number> = []
    for (let t = 0; t < 4 * 3_600_000;) {
      t += (-Math.log(1 - random()) / 0.2) * 1000
      arrivals.push(t)
    }
    const count = (now: number, window: number) => arrivals.filter((a) => a > now - window && a <= now).length
    let state = initialSizingState
    const targets: Array<{ at: number; target: number }> = []
    for (let now = LONG_WINDOW_MS; now <= 4 * 3_600_000; now += 30_000) {
      const result = decide(policy, { now, claimsShort: count(now, SHORT_WINDOW_MS), claimsLong: count(now, LONG_WINDOW_MS), readyTimes: [90_000] }, state)
      state = result.state
      targets.push({ at: now, target: result.decision.target })
    }
    // The measured rate wobbles by ±7 %; rises follow it at once (a create each), falls need a 10 % step.
    const falls = targets.filter((t, i) => i > 0 && t.target < targets[i - 1]!.target)
    expect(falls.length).toBeLessThanOrEqual(6)
    let lastRise = -Infinity
    targets.forEach((t, i) => {
      if (i === 0) return
      if (t.target > targets[i - 1]!.target) lastRise = t.at
      if (t.target < targets[i - 1]!.target) expect(t.at - lastRise).toBeGreaterThanOrEqual(policy.scaleDownAfterMs)
    })
    // λ·T = 18; the 99th percentile of Poisson(18) is 29: the target stays near it.
    for (const t of targets) expect(t.target).toBeGreaterThanOrEqual(24)
    for (const t of targets) expect(t.target).toBeLessThanOrEqual(36)
  })

  it("assumes a ready time until one is measured, uses the 90th percentile after, and says so", () => {
    const policy = { minIdle: 2, maxIdle: 100, targetMissRate: 0.02, scaleDownAfterMs: 60_000 }
    const none = decide(policy, { now: 0, claimsShort: 0, claimsLong: 0, readyTimes: [] }, initialSizingState).decision
    expect(none).toMatchObject({ readyMs: ASSUMED_READY_MS, target: 2, rate: 0 })
    const ready = Array.from({ length: 20 }, (_, i) => (i + 1) * 10_000) // 10 … 200 s
    expect(percentile(ready, 90, 0)).toBe(180_000)
    const busy = decide(policy, { now: 0, claimsShort: 24, claimsLong: 360, readyTimes: ready }, initialSizingState).decision
    expect(describeSizing(busy)).toBe(`λ = 0.4/s, ready in 180 s (p90) → ${busy.target} warm`)
    expect(busy.target).toBe(warmFor(policy, 0.4, 180_000))
  })
})

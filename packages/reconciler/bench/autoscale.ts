/**
 * Adaptive sizing against fixed pools, trace by trace: the real Controller on the in-memory services and a
 * test clock set by the simulation (hours of traffic in seconds), ready times drawn per instance from a long-tailed distribution,
 * seeded so every run is the same run. For each trace and policy: the miss rate (claims that found no idle
 * instance) and the idle instance-hours (time integral of instances in `idle`).
 *
 * `autoscale.<trace>.frontier_ratio` is autoscaling's miss rate divided by the miss rate the fixed pools reach
 * at the same idle-hours (linear between their points, clamped at the ends). The table goes to stderr, the
 * figure to docs/autoscale.svg.
 */
import { Clock, Duration, Effect, Layer, Logger, LogLevel } from "effect"
import { writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Controller, InstanceStore, PoolSpec } from "../src/index.js"
import { inMemoryServices, seededRandom } from "../src/testing/index.js"
import { frontierSvg, type Policy, policies, type Point } from "./autoscale-figure.js"

const HOUR = 3_600
const TICK_SECONDS = 30

interface Trace {
  readonly name: string
  readonly hours: number
  /** Claims per second at second `t`. */
  readonly rate: (t: number) => number
  /** The highest rate, for thinning. */
  readonly peak: number
}

const BASE = 0.05 // 180 claims an hour
export const traces: ReadonlyArray<Trace> = [
  { name: "steady", hours: 6, rate: () => BASE, peak: BASE },
  {
    // One day: 0.01/s at night, 0.09/s at noon.
    name: "diurnal",
    hours: 24,
    rate: (t) => BASE * (1 - 0.8 * Math.cos((2 * Math.PI * t) / (24 * HOUR))),
    peak: BASE * 1.8
  },
  {
    name: "flash_crowd",
    hours: 4,
    rate: (t) => (t >= 2 * HOUR && t < 2 * HOUR + 600 ? 10 * BASE : BASE),
    peak: 10 * BASE
  },
  {
    // Three quiet hours (7 claims an hour), then half an hour at 0.2/s, then quiet again.
    name: "quiet_then_burst",
    hours: 4,
    rate: (t) => (t >= 3 * HOUR && t < 3.5 * HOUR ? 0.2 : 0.002),
    peak: 0.2
  }
]

/** Claim times of a non-homogeneous Poisson process (thinning). */
const arrivalsOf = (trace: Trace, random: () => number): ReadonlyArray<number> => {
  const times: Array<number> = []
  for (let t = 0; ;) {
    t += -Math.log(1 - random()) / trace.peak
    if (t >= trace.hours * HOUR) return times
    if (random() < trace.rate(t) / trace.peak) times.push(t)
  }
}

/** Create → ready: 60 s at least, a median near 100 s, p90 near 150 s, a tail past 200 s (shifted log-normal). */
const readySeconds = (random: () => number) => {
  const normal = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
  return 60 + 40 * Math.exp(0.6 * normal)
}

/** How long a claimed agent lives before its user is done with it (exponential, mean 20 min). */
const sessionSeconds = (random: () => number) => -Math.log(1 - random()) * 20 * 60

/**
 * A clock that moves only when the simulation sets it. Unlike the TestClock it never waits for fibers to
 * settle on each move (nothing in a pass sleeps), which is what makes a day of traffic take seconds.
 * Sleeps never end: only timeouts sleep here, and what they guard finishes first.
 */
const manualClock = () => {
  let now = 0
  const clock: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => now,
    unsafeCurrentTimeNanos: () => BigInt(now) * 1_000_000n,
    currentTimeMillis: Effect.sync(() => now),
    currentTimeNanos: Effect.sync(() => BigInt(now) * 1_000_000n),
    sleep: () => Effect.never
  }
  return { clock, set: (ms: number) => (now = ms) }
}

const specOf = (policy: Policy) =>
  new PoolSpec({
    name: "bench",
    namePrefix: "bench-",
    minIdle: policy.kind === "fixed" ? policy.minIdle : 1,
    maxTotal: 2_000,
    template: { image: "img", env: {} },
    ...(policy.kind === "autoscale" ? { autoscale: { targetMissRate: 0.01, maxIdle: 300, scaleDownAfterMs: 600_000 } } : {})
  })

/** One trace under one policy: every claim, session end and tick in time order, on a manual clock. */
export const simulate = (trace: Trace, policy: Policy, seed: number) => {
  const arrivals = arrivalsOf(trace, seededRandom(seed))
  const random = seededRandom(seed + 1)
  const services = inMemoryServices({ drawDeployTime: () => Duration.seconds(readySeconds(random)) })
  const layer = Controller.layer(specOf(policy), { background: false }).pipe(Layer.provideMerge(services))
  const time = manualClock()
  return Effect.gen(function*() {
    const controller = yield* Controller
    const ends: Array<{ at: number; id: string }> = [] // kept sorted by time
    let misses = 0
    let idleSeconds = 0
    let idle = 0
    let now = 0
    const advance = (to: number) =>
      Effect.gen(function*() {
        idleSeconds += idle * (to - now)
        now = to
        time.set(Math.round(to * 1000))
      })
    const store = yield* InstanceStore
    const idleNow = Effect.map(Effect.orDie(store.counts(controller.spec.name)), (counts) => counts.idle)
    let next = 0
    for (let tick = 0; tick <= trace.hours * HOUR; tick += TICK_SECONDS) {
      // Everything due before this tick, in order: claims and session ends.
      while (true) {
        const claimAt = next < arrivals.length && arrivals[next]! < tick ? arrivals[next]! : Infinity
        const endAt = ends.length > 0 && ends[0]!.at < tick ? ends[0]!.at : Infinity
        if (claimAt === Infinity && endAt === Infinity) break
        if (endAt < claimAt) {
          yield* advance(endAt)
          yield* Effect.ignore(controller.kill(ends.shift()!.id))
          continue
        }
        yield* advance(claimAt)
        next++
        const claimed = yield* Effect.either(controller.claim({ label: "bench" }))
        if (claimed._tag === "Left") misses++
        else {
          const at = now + sessionSeconds(random)
          const i = ends.findIndex((e) => e.at > at)
          ends.splice(i === -1 ? ends.length : i, 0, { at, id: claimed.right.instance.id })
        }
        // The claim's trigger: the backfill pass runs at once.
        yield* controller.runPass
        idle = yield* idleNow
      }
      yield* advance(tick)
      yield* controller.runPass
      idle = yield* idleNow
    }
    return { misses, claims: arrivals.length, idleHours: idleSeconds / HOUR }
  }).pipe(Effect.provide(layer), Effect.withClock(time.clock))
}

/** The fixed pools' miss rate at `idleHours`: linear between their points, clamped at the ends. */
export const frontierAt = (fixed: ReadonlyArray<Point>, idleHours: number): number => {
  const sorted = [...fixed].sort((a, b) => a.idleHours - b.idleHours)
  if (idleHours <= sorted[0]!.idleHours) return sorted[0]!.missRate
  for (let i = 1; i < sorted.length; i++) {
    const [a, b] = [sorted[i - 1]!, sorted[i]!]
    if (idleHours <= b.idleHours) return a.missRate + ((b.missRate - a.missRate) * (idleHours - a.idleHours)) / (b.idleHours - a.idleHours)
  }
  return sorted[sorted.length - 1]!.missRate
}

/** Autoscaling's misses over the frontier's at its cost; equal (1) when neither misses. */
const ratio = (misses: number, frontier: number) => (frontier > 0 ? misses / frontier : misses > 0 ? Infinity : 1)

export const run = async (): Promise<Record<string, number>> => {
  const results: Record<string, number> = {}
  const figure: Array<{ trace: string; points: ReadonlyArray<Point> }> = []
  const table: Array<string> = [`${"trace".padEnd(18)}${policies.map((p) => p.label.padStart(20)).join("")}   (miss rate / idle h)`]
  for (const [i, trace] of traces.entries()) {
    const points: Array<Point> = []
    for (const policy of policies) {
      const outcome = await Effect.runPromise(simulate(trace, policy, 1_000 + i).pipe(Logger.withMinimumLogLevel(LogLevel.Error)))
      points.push({ policy, missRate: outcome.misses / Math.max(1, outcome.claims), idleHours: outcome.idleHours })
    }
    const auto = points.find((p) => p.policy.kind === "autoscale")!
    const frontier = frontierAt(points.filter((p) => p.policy.kind === "fixed"), auto.idleHours)
    results[`autoscale.${trace.name}.miss_rate`] = auto.missRate
    results[`autoscale.${trace.name}.idle_hours`] = auto.idleHours
    results[`autoscale.${trace.name}.frontier_ratio`] = ratio(auto.missRate, frontier)
    figure.push({ trace: trace.name, points })
    table.push(`${trace.name.padEnd(18)}${points.map((p) => `${p.missRate.toFixed(3)} / ${p.idleHours.toFixed(1)}`.padStart(20)).join("")}`)
  }
  console.error(table.join("\n"))
  const out = fileURLToPath(new URL("../../../docs/autoscale.svg", import.meta.url))
  writeFileSync(out, frontierSvg(figure))
  console.error(`wrote ${out}`)
  return results
}

/**
 * What the dashboard draws: a sample every interval (a minute by default) of each pool's instances by status,
 * and of the process's metrics turned into rates — claims, misses and failures, claim latency p50/p99,
 * provider errors and, where the Railway client counts them, API requests used in the last hour.
 *
 * Kept in memory for a few hours: the pool's own state is in Postgres, this is only its recent past, and a
 * restart costs the charts, never the pool. Counts come from the store (right on any replica); rates come from
 * this process's metrics (the claims this replica served, the provider calls it made).
 */
import { InstanceStore, type StoreError } from "@warmpool/reconciler"
import { Clock, Context, Deferred, Duration, Effect, Layer, Metric, MetricState, Option, Ref, Schedule } from "effect"
import { randomUUID } from "node:crypto"

/** The Railway client's counter of API requests (every operation; tags are summed). Absent on other providers. */
export const RAILWAY_REQUESTS_METRIC = "warmpool_railway_requests_total"
const CLAIMS_METRIC = "warmpool_claims_total"
const CLAIM_DURATION_METRIC = "warmpool_claim_duration_seconds"
const PROVIDER_ERRORS_METRIC = "warmpool_provider_errors_total"

/** Instances of one pool by the status groups an operator reads. */
export interface PoolCounts {
  readonly idle: number
  readonly starting: number
  readonly claimed: number
  readonly crashed: number
}

/** What one replica counted in one interval: what the history stores. */
export interface IntervalRecord {
  /** End of the interval, epoch ms. */
  readonly at: number
  /** Per pool; a pool whose counts could not be read (database down) is missing: a gap in its chart. */
  readonly pools: Readonly<Record<string, PoolCounts>>
  /** Claims served, claims that found no idle instance, claims that failed otherwise. */
  readonly claims: number
  readonly misses: number
  readonly failed: number
  /** The interval's claim durations: [upper bound in seconds, claims ≤ bound], cumulative. */
  readonly latency: ReadonlyArray<readonly [number, number]>
  readonly providerErrors: number
  /** Railway API requests sent; absent where nothing counts them. */
  readonly requests?: number
}

/** What the dashboard draws: the records of every replica in one interval, merged. */
export interface Sample {
  readonly at: number
  readonly pools: Readonly<Record<string, PoolCounts>>
  readonly claims: number
  readonly misses: number
  readonly failed: number
  /** Claim latency in ms, estimated from the histogram's buckets; null without claims. */
  readonly p50Ms: number | null
  readonly p99Ms: number | null
  readonly providerErrors: number
  /** Railway API requests sent in the hour up to `at`; absent where nothing counts them. */
  readonly requestsLastHour?: number
}

/** The cumulative metrics a sample is the difference of. */
export interface Reading {
  readonly claimsByOutcome: Readonly<Record<string, number>>
  /** Cumulative bucket counts of the claim-duration histogram: [upper bound in seconds, count ≤ bound]. */
  readonly latencyBuckets: ReadonlyArray<readonly [number, number]>
  readonly providerErrors: number
  readonly railwayRequests: Option.Option<number>
}

/** The totals of the metrics the dashboard uses, from a snapshot of every metric of the process. */
export const readMetrics = (pairs: Iterable<{ readonly metricKey: { readonly name: string; readonly tags: ReadonlyArray<{ readonly key: string; readonly value: string }> }; readonly metricState: unknown }>): Reading => {
  const claimsByOutcome: Record<string, number> = {}
  let latencyBuckets: ReadonlyArray<readonly [number, number]> = []
  let providerErrors = 0
  let railwayRequests = Option.none<number>()
  for (const { metricKey: key, metricState: state } of pairs) {
    if (key.name === CLAIMS_METRIC && MetricState.isCounterState(state)) {
      const outcome = key.tags.find((t) => t.key === "outcome")?.value ?? "unknown"
      claimsByOutcome[outcome] = (claimsByOutcome[outcome] ?? 0) + Number(state.count)
    } else if (key.name === CLAIM_DURATION_METRIC && MetricState.isHistogramState(state)) {
      latencyBuckets = state.buckets
    } else if (key.name === PROVIDER_ERRORS_METRIC && MetricState.isCounterState(state)) {
      providerErrors += Number(state.count)
    } else if (key.name === RAILWAY_REQUESTS_METRIC && MetricState.isCounterState(state)) {
      railwayRequests = Option.some(Option.getOrElse(railwayRequests, () => 0) + Number(state.count))
    }
  }
  return { claimsByOutcome, latencyBuckets, providerErrors, railwayRequests }
}

/**
 * The `q` quantile of what cumulative `buckets` counted, interpolated inside its bucket (as Prometheus'
 * `histogram_quantile` does); null when they counted nothing. Past the last finite bound: that bound.
 */
export const quantileOf = (buckets: ReadonlyArray<readonly [number, number]>, q: number): number | null => {
  const total = buckets.length === 0 ? 0 : buckets[buckets.length - 1]![1]
  if (total <= 0) return null
  const rank = q * total
  let below = 0
  let lower = 0
  for (const [bound, cumulative] of buckets) {
    if (cumulative >= rank && cumulative > below) {
      if (!Number.isFinite(bound)) return lower
      return lower + (bound - lower) * ((rank - below) / (cumulative - below))
    }
    below = cumulative
    if (Number.isFinite(bound)) lower = bound
  }
  return lower
}

const bucketDelta = (before: Reading["latencyBuckets"], after: Reading["latencyBuckets"]) =>
  after.map(([bound, count], i) => [bound, count - (before[i]?.[1] ?? 0)] as const)

const delta = (before: Readonly<Record<string, number>>, after: Readonly<Record<string, number>>, outcome: string) =>
  (after[outcome] ?? 0) - (before[outcome] ?? 0)

/** What happened between two readings of the metrics. */
export const recordOf = (at: number, pools: Readonly<Record<string, PoolCounts>>, before: Reading, after: Reading): IntervalRecord => {
  const claims = delta(before.claimsByOutcome, after.claimsByOutcome, "claimed")
  const misses = delta(before.claimsByOutcome, after.claimsByOutcome, "NoIdleInstanceError")
  const all = Object.keys(after.claimsByOutcome).reduce((sum, outcome) => sum + delta(before.claimsByOutcome, after.claimsByOutcome, outcome), 0)
  const record = {
    at,
    pools,
    claims,
    misses,
    failed: all - claims - misses,
    latency: bucketDelta(before.latencyBuckets, after.latencyBuckets),
    providerErrors: after.providerErrors - before.providerErrors
  }
  return Option.match(after.railwayRequests, {
    onNone: () => record,
    onSome: (total) => ({ ...record, requests: total - Option.getOrElse(before.railwayRequests, () => 0) })
  })
}

const HOUR = 3_600_000
const ms = (seconds: number | null) => (seconds === null ? null : Math.round(seconds * 10_000) / 10)
const addBuckets = (a: IntervalRecord["latency"], b: IntervalRecord["latency"]) =>
  a.length === 0 ? b : b.length === 0 ? a : a.map(([bound, count], i) => [bound, count + (b[i]?.[1] ?? 0)] as const)

/**
 * The samples the dashboard draws from the records of every replica (several replicas, or one restarted):
 * records in the same interval are one sample — counts summed, latency buckets added before the quantiles
 * are taken, each pool's counts from the latest record — and the requests of the hour summed over samples.
 */
export const mergeRecords = (records: ReadonlyArray<IntervalRecord>, intervalMs: number): ReadonlyArray<Sample> => {
  const byInterval = new Map<number, Array<IntervalRecord>>()
  for (const record of records) {
    const end = Math.ceil(record.at / intervalMs) * intervalMs
    byInterval.set(end, [...(byInterval.get(end) ?? []), record])
  }
  const merged = [...byInterval.entries()].sort(([a], [b]) => a - b).map(([at, group]) => {
    const latest = [...group].sort((a, b) => a.at - b.at)
    const counted = group.filter((r) => r.requests !== undefined)
    return {
      at,
      pools: Object.assign({}, ...latest.map((r) => r.pools)) as Record<string, PoolCounts>,
      claims: group.reduce((n, r) => n + r.claims, 0),
      misses: group.reduce((n, r) => n + r.misses, 0),
      failed: group.reduce((n, r) => n + r.failed, 0),
      latency: group.reduce<IntervalRecord["latency"]>((sum, r) => addBuckets(sum, r.latency), []),
      providerErrors: group.reduce((n, r) => n + r.providerErrors, 0),
      requests: counted.length === 0 ? undefined : counted.reduce((n, r) => n + r.requests!, 0)
    }
  })
  return merged.map((m) => {
    const sample: Sample = {
      at: m.at,
      pools: m.pools,
      claims: m.claims,
      misses: m.misses,
      failed: m.failed,
      p50Ms: ms(quantileOf(m.latency, 0.5)),
      p99Ms: ms(quantileOf(m.latency, 0.99)),
      providerErrors: m.providerErrors
    }
    if (m.requests === undefined) return sample
    const hour = merged.filter((other) => other.at > m.at - HOUR && other.at <= m.at)
    return { ...sample, requestsLastHour: hour.reduce((n, other) => n + (other.requests ?? 0), 0) }
  })
}

/**
 * Status groups: `creating` is starting from the operator's view, `claiming` and `pending_acceptance` are
 * claimed, `tainted` is crashed (both wait to be dismissed).
 */
export const groupCounts = (counts: Readonly<Record<string, number>>): PoolCounts => ({
  idle: counts.idle ?? 0,
  starting: (counts.creating ?? 0) + (counts.starting ?? 0),
  claimed: (counts.claiming ?? 0) + (counts.claimed ?? 0) + (counts.pending_acceptance ?? 0),
  crashed: (counts.crashed ?? 0) + (counts.tainted ?? 0)
})

/** Where the records are kept: in memory by default, in Postgres on a server (it outlives a restart). */
export class HistoryStore extends Context.Tag("@warmpool/server/HistoryStore")<
  HistoryStore,
  {
    readonly append: (replica: string, record: IntervalRecord) => Effect.Effect<void, StoreError>
    /** Every replica's records that end after `after` (epoch ms), oldest first. */
    readonly since: (after: number) => Effect.Effect<ReadonlyArray<IntervalRecord>, StoreError>
    /** Forgets the records that end before `before`. */
    readonly trim: (before: number) => Effect.Effect<void, StoreError>
  }
>() {
  /** Records in this process's memory: the charts start over with the process. */
  static readonly memory = Layer.effect(HistoryStore, Effect.suspend(() => memoryStore))
}

const memoryStore = Effect.map(Ref.make<ReadonlyArray<IntervalRecord>>([]), (records) =>
  HistoryStore.of({
    append: (_, record) => Ref.update(records, (all) => [...all, record]),
    since: (after) => Effect.map(Ref.get(records), (all) => all.filter((r) => r.at > after)),
    trim: (before) => Ref.update(records, (all) => all.filter((r) => r.at >= before))
  }))

export interface HistoryOptions {
  /** The pools to chart, in the order shown. */
  readonly pools: ReadonlyArray<string>
  /** Time between samples. Default 1 minute (rates are per interval; the page shows them per minute). */
  readonly interval?: Duration.DurationInput
  /** How far back samples are kept. Default 6 hours. */
  readonly retention?: Duration.DurationInput
  /** The platform's API requests allowed per hour (Railway's plan), drawn against the requests used. */
  readonly requestLimitPerHour?: number
}

export interface HistoryView {
  readonly intervalMs: number
  readonly pools: ReadonlyArray<string>
  readonly requestLimitPerHour: number | null
  readonly samples: ReadonlyArray<Sample>
}

export class DashboardHistory extends Context.Tag("@warmpool/server/DashboardHistory")<
  DashboardHistory,
  {
    /** The samples that end after `since` (epoch ms; the whole retention without it), once the first is taken. */
    readonly view: (since?: number) => Effect.Effect<HistoryView, StoreError>
  }
>() {
  /** Samples every interval for the scope's lifetime, into the HistoryStore in context (in memory without one). */
  static readonly make = (options: HistoryOptions) =>
    Effect.gen(function*() {
      const store = yield* InstanceStore
      const history = yield* Effect.flatMap(Effect.serviceOption(HistoryStore), Option.match({ onSome: Effect.succeed, onNone: () => memoryStore }))
      const intervalMs = Duration.toMillis(options.interval ?? Duration.minutes(1))
      const retentionMs = Duration.toMillis(options.retention ?? Duration.hours(6))
      // Each process is a replica of its own: its records add to those of the others, and of its past lives.
      const replica = randomUUID()
      // Rates start from now: what the process counted before this history began is in no record.
      const last = yield* Ref.make(readMetrics(Metric.unsafeSnapshot()))

      const poolCounts = Effect.forEach(options.pools, (pool) =>
        store.counts(pool).pipe(
          Effect.map((counts) => [[pool, groupCounts(counts)] as const]),
          // A gap in the chart says the database did not answer.
          Effect.orElseSucceed(() => [])
        )).pipe(Effect.map((entries) => Object.fromEntries(entries.flat())))

      const sample = Effect.gen(function*() {
        const pools = yield* poolCounts
        const at = yield* Clock.currentTimeMillis
        const reading = readMetrics(Metric.unsafeSnapshot())
        const record = recordOf(at, pools, yield* Ref.getAndSet(last, reading), reading)
        // A record the database refused is a gap in the charts, not a reason to stop sampling.
        yield* history.append(replica, record).pipe(
          Effect.zipRight(history.trim(at - retentionMs - HOUR)),
          Effect.catchAll((error) => Effect.logDebug(`dashboard history: ${error.message}`))
        )
        return record
      }).pipe(Effect.withSpan("DashboardHistory.sample"))

      // The first record at once (the pools' counts: the charts start with a point), then one every interval,
      // in a fiber of their own: building this layer waits for no database, so the server answers from its start.
      const first = yield* Deferred.make<void>()
      yield* Effect.forkScoped(
        sample.pipe(
          Effect.ensuring(Deferred.succeed(first, undefined)),
          Effect.zipRight(Effect.schedule(sample, Schedule.spaced(Duration.millis(intervalMs))))
        )
      )

      return DashboardHistory.of({
        view: (since) =>
          Effect.gen(function*() {
            yield* Deferred.await(first)
            const now = yield* Clock.currentTimeMillis
            const from = Math.max(since ?? -Infinity, now - retentionMs)
            // An hour more than is shown: the requests of the first sample's hour.
            const samples = mergeRecords(yield* history.since(from - HOUR - intervalMs), intervalMs)
            return {
              intervalMs,
              pools: options.pools,
              requestLimitPerHour: options.requestLimitPerHour ?? null,
              samples: samples.filter((x) => x.at > from)
            }
          })
      })
    })

  static readonly layer = (options: HistoryOptions) => Layer.scoped(DashboardHistory, DashboardHistory.make(options))
}

/** The dashboard's history: quantiles from histogram buckets, samples from two readings, and the sampler. */
import { describe, expect, it } from "@effect/vitest"
import { Controller, PoolSpec } from "@warmpool/reconciler"
import { freshDatabase } from "@warmpool/reconciler-pg/testing"
import { InMemoryStore, InMemoryStoreControl } from "@warmpool/reconciler/testing"
import { inMemoryConvosServices } from "@warmpool/providers-convos/testing"
import { SqlClient } from "@effect/sql"
import { inject } from "vitest"
import { migrateServerTables } from "../src/migrations.js"
import { Duration, Effect, Layer, Metric, Option, TestClock } from "effect"
import {
  DashboardHistory,
  groupCounts,
  HistoryStore,
  type IntervalRecord,
  mergeRecords,
  PgHistoryStore,
  quantileOf,
  RAILWAY_REQUESTS_METRIC,
  readMetrics,
  type Reading,
  recordOf
} from "../src/index.js"

const pools = { eu: { idle: 3, starting: 1, claimed: 2, crashed: 0 } }

describe("history, pure", () => {
  it("quantiles interpolate inside the bucket that holds the rank, as histogram_quantile does", () => {
    // 10 observations: 4 in (0, 0.01], 4 in (0.01, 0.02], 2 in (0.02, 0.04].
    const buckets = [[0.01, 4], [0.02, 8], [0.04, 10], [Infinity, 10]] as const
    expect(quantileOf(buckets, 0.5)).toBeCloseTo(0.0125)
    expect(quantileOf(buckets, 0.2)).toBeCloseTo(0.005)
    expect(quantileOf(buckets, 0.99)).toBeCloseTo(0.039)
    expect(quantileOf(buckets, 1)).toBeCloseTo(0.04)
    // Past the last finite bound: that bound. Nothing counted: no value.
    expect(quantileOf([[0.01, 0], [Infinity, 3]], 0.5)).toBe(0.01)
    expect(quantileOf([[0.01, 0], [Infinity, 0]], 0.5)).toBeNull()
    expect(quantileOf([], 0.5)).toBeNull()
  })

  it("a record is the difference of two readings: claims, misses, other failures, the interval's latency buckets", () => {
    const before: Reading = {
      claimsByOutcome: { claimed: 10, NoIdleInstanceError: 1 },
      latencyBuckets: [[0.01, 10], [0.1, 10], [Infinity, 10]],
      providerErrors: 2,
      railwayRequests: Option.some(500)
    }
    const after: Reading = {
      claimsByOutcome: { claimed: 14, NoIdleInstanceError: 3, ClaimFailedError: 1 },
      latencyBuckets: [[0.01, 10], [0.1, 14], [Infinity, 14]],
      providerErrors: 5,
      railwayRequests: Option.some(650)
    }
    expect(recordOf(60_000, pools, before, after)).toEqual({
      at: 60_000, pools, claims: 4, misses: 2, failed: 1, latency: [[0.01, 0], [0.1, 4], [Infinity, 4]], providerErrors: 3, requests: 150
    })
    // Without Railway's counter the field is absent, not zero.
    const quiet = recordOf(60_000, pools, after, { ...after, railwayRequests: Option.none() })
    expect(quiet).toEqual({ at: 60_000, pools, claims: 0, misses: 0, failed: 0, latency: [[0.01, 0], [0.1, 0], [Infinity, 0]], providerErrors: 0 })
  })

  it("merging: one sample an interval, replicas' counts summed and their buckets added before the quantiles", () => {
    const record = (at: number, claims: number, latency: IntervalRecord["latency"], extra: Partial<IntervalRecord> = {}): IntervalRecord => ({
      at, pools: { eu: { idle: claims, starting: 0, claimed: 0, crashed: 0 } }, claims, misses: 0, failed: 0, latency, providerErrors: 0, ...extra
    })
    const fast = [[0.01, 9], [0.1, 9], [Infinity, 9]] as const
    const slow = [[0.01, 0], [0.1, 1], [Infinity, 1]] as const
    const samples = mergeRecords([
      record(59_000, 9, fast, { providerErrors: 1 }),
      // Another replica, same interval: its one slow claim is the p99 of the ten.
      record(59_500, 1, slow, { providerErrors: 2 }),
      record(119_000, 0, [])
    ], 60_000)
    expect(samples).toEqual([
      { at: 60_000, pools: { eu: { idle: 1, starting: 0, claimed: 0, crashed: 0 } }, claims: 10, misses: 0, failed: 0, p50Ms: 5.6, p99Ms: 91, providerErrors: 3 },
      { at: 120_000, pools: { eu: { idle: 0, starting: 0, claimed: 0, crashed: 0 } }, claims: 0, misses: 0, failed: 0, p50Ms: null, p99Ms: null, providerErrors: 0 }
    ])
  })

  it("Railway requests: those of the hour up to each sample, from every replica, absent where nothing counts them", () => {
    const minute = 60_000
    const records: Array<IntervalRecord> = Array.from({ length: 90 }, (_, i) => ({
      at: (i + 1) * minute, pools: {}, claims: 0, misses: 0, failed: 0, latency: [], providerErrors: 0, requests: 100
    }))
    // A second replica sends 50 in minute 30.
    records.push({ at: 30 * minute - 1, pools: {}, claims: 0, misses: 0, failed: 0, latency: [], providerErrors: 0, requests: 50 })
    const used = mergeRecords(records, minute).map((s) => s.requestsLastHour)
    expect(used[29]).toBe(3_050)
    expect(used[59]).toBe(6_050)
    // After an hour, only the last 60 minutes count.
    expect(used[89]).toBe(6_000)
    expect(mergeRecords([{ at: minute, pools: {}, claims: 0, misses: 0, failed: 0, latency: [], providerErrors: 0 }], minute)[0]).not.toHaveProperty("requestsLastHour")
  })

  it.effect("reads the metrics by name, summing their tags; statuses grouped as an operator reads them", () =>
    Effect.gen(function*() {
      const before = readMetrics(Metric.unsafeSnapshot())
      const errors = Metric.counter("warmpool_provider_errors_total", { incremental: true })
      yield* Metric.increment(Metric.tagged(errors, "kind", "transient"))
      yield* Metric.incrementBy(Metric.tagged(errors, "kind", "rate_limited"), 2)
      const requests = Metric.counter(RAILWAY_REQUESTS_METRIC)
      yield* Metric.incrementBy(Metric.tagged(requests, "operation", "services"), 5)
      yield* Metric.incrementBy(Metric.tagged(requests, "operation", "serviceCreate"), 2)
      yield* Metric.increment(Metric.tagged(Metric.counter("warmpool_claims_total"), "outcome", "NoIdleInstanceError"))
      const after = readMetrics(Metric.unsafeSnapshot())
      expect(after.providerErrors - before.providerErrors).toBe(3)
      expect(Option.getOrThrow(after.railwayRequests) - Option.getOrElse(before.railwayRequests, () => 0)).toBe(7)
      expect((after.claimsByOutcome.NoIdleInstanceError ?? 0) - (before.claimsByOutcome.NoIdleInstanceError ?? 0)).toBe(1)
      expect(readMetrics([])).toEqual({ claimsByOutcome: {}, latencyBuckets: [], providerErrors: 0, railwayRequests: Option.none() })
      expect(groupCounts({ idle: 1, creating: 2, starting: 3, claiming: 1, claimed: 4, crashed: 1, deleting: 5 })).toEqual({ idle: 1, starting: 5, claimed: 5, crashed: 1 })
    }))
})

const spec = new PoolSpec({ name: "eu", namePrefix: "agent-", minIdle: 2, maxTotal: 4, template: { image: "img", env: {} } })
const world = DashboardHistory.layer({ pools: ["eu"], interval: Duration.minutes(1), requestLimitPerHour: 1000 }).pipe(
  Layer.provideMerge(Controller.layer(spec, { background: false })),
  Layer.provideMerge(inMemoryConvosServices())
)

describe("DashboardHistory", () => {
  it.effect("samples the pool's counts and the interval's claims every interval, and serves those after `since`", () =>
    Effect.gen(function*() {
      const history = yield* DashboardHistory
      const controller = yield* Controller
      // The first sample is taken at once: an empty pool.
      const first = yield* history.view()
      expect(first).toMatchObject({ intervalMs: 60_000, pools: ["eu"], requestLimitPerHour: 1000 })
      expect(first.samples).toEqual([expect.objectContaining({ pools: { eu: { idle: 0, starting: 0, claimed: 0, crashed: 0 } }, claims: 0 })])
      yield* Effect.repeatN(controller.runPass, 1)
      yield* controller.claim({ agentName: "a", instructions: "" })
      yield* controller.claim({ agentName: "b", instructions: "" })
      yield* Effect.either(controller.claim({ agentName: "c", instructions: "" }))
      yield* TestClock.adjust(Duration.minutes(1))
      const second = yield* history.view(first.samples[0]!.at)
      expect(second.samples).toEqual([expect.objectContaining({ at: 60_000, pools: { eu: { idle: 0, starting: 0, claimed: 2, crashed: 0 } }, claims: 2, misses: 1, failed: 0 })])
      expect(second.samples[0]!.p50Ms).toBeTypeOf("number")
    }).pipe(Effect.provide(world)))

  it.effect("a database that does not answer is a gap in the pool's chart, not a zero", () =>
    Effect.gen(function*() {
      const history = yield* DashboardHistory
      const store = yield* InMemoryStoreControl
      yield* history.view()
      yield* store.failNext(1, InMemoryStore.unavailable("counts"), "counts")
      yield* TestClock.adjust(Duration.minutes(1))
      const { samples } = yield* history.view()
      expect(samples.map((s) => s.pools)).toEqual([{ eu: { idle: 0, starting: 0, claimed: 0, crashed: 0 } }, {}])
    }).pipe(Effect.provide(world)))

  it.effect("Railway requests counted by the client reach the samples; samples older than the retention go", () =>
    Effect.gen(function*() {
      const requests = Metric.counter(RAILWAY_REQUESTS_METRIC)
      const history = yield* DashboardHistory
      yield* history.view()
      for (let minute = 1; minute <= 90; minute++) {
        yield* Metric.incrementBy(requests, 100)
        yield* TestClock.adjust(Duration.minutes(1))
      }
      const { samples } = yield* history.view()
      expect(samples.at(-1)!.requestsLastHour).toBe(6_000)
      yield* TestClock.adjust(Duration.hours(6))
      const kept = (yield* history.view()).samples
      expect(kept[0]!.at).toBeGreaterThan(Duration.toMillis(Duration.minutes(90)))
      expect(kept.length).toBeLessThanOrEqual(361)
    }).pipe(Effect.provide(world)))
})

describe("PgHistoryStore", () => {
  const serverUrl = inject("postgresUrl")
  const claimed = Metric.tagged(Metric.counter("warmpool_claims_total"), "outcome", "claimed")
  const replica = DashboardHistory.make({ pools: ["eu"], interval: Duration.minutes(1) })

  it.scoped("the history outlives a restart: a new replica draws the records of the one before, merged with its own", () =>
    Effect.gen(function*() {
      // The first life: three claims in its first minute.
      yield* Effect.scoped(
        Effect.gen(function*() {
          yield* (yield* replica).view()
          yield* Metric.incrementBy(claimed, 3)
          yield* TestClock.adjust(Duration.minutes(1))
        })
      )
      // The second life starts where the first ended (its first record taken), and serves two claims.
      const history = yield* replica
      yield* history.view()
      yield* Metric.incrementBy(claimed, 2)
      yield* TestClock.adjust(Duration.minutes(1))
      const { samples } = yield* history.view()
      expect(samples.map((s) => [s.at, s.claims])).toEqual([[0, 0], [60_000, 3], [120_000, 2]])
      expect(samples.every((s) => s.pools.eu !== undefined)).toBe(true)
      // Only what is newer than `since`; two records a life (one at start, one a minute later).
      expect((yield* history.view(60_000)).samples.map((s) => s.at)).toEqual([120_000])
      const rows = yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`SELECT count(*)::int AS n FROM warmpool_dashboard_samples`)
      expect(rows[0]!.n).toBe(4)
    }).pipe(Effect.provide(Layer.mergeAll(PgHistoryStore.layer, InMemoryStore.layer).pipe(Layer.provideMerge(freshDatabase(serverUrl, { migrate: migrateServerTables }))))), 60_000)

  it.effect("a record reads back as written, the open-ended latency bucket included; trim forgets the old ones", () =>
    Effect.gen(function*() {
      const store = yield* HistoryStore
      const record: IntervalRecord = {
        at: 1_000_000, pools: { eu: { idle: 1, starting: 2, claimed: 3, crashed: 0 } }, claims: 3, misses: 1, failed: 0,
        latency: [[0.01, 1], [0.02, 3], [Infinity, 3]], providerErrors: 2, requests: 7
      }
      yield* store.append("replica-a", record)
      yield* store.append("replica-a", { ...record, at: 2_000_000 })
      expect(yield* store.since(0)).toEqual([record, { ...record, at: 2_000_000 }])
      yield* store.trim(1_500_000)
      expect((yield* store.since(0)).map((r) => r.at)).toEqual([2_000_000])
    }).pipe(Effect.provide(PgHistoryStore.layer.pipe(Layer.provideMerge(freshDatabase(serverUrl, { migrate: migrateServerTables }))))), 60_000)
})

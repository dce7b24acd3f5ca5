/**
 * Two replicas on one database: only one leads; cutting the leader's connection hands the lease to the
 * other within its ttl; and a leader that lost its lease without knowing (paused, cut off) lands no write.
 */
import { describe, expect, it } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Context, Duration, Effect, Either, Layer, Option, Redacted, Schedule, TestServices } from "effect"
import { inject } from "vitest"
import { Controller, InstanceStore, Leadership, newInstance, PoolSpec } from "@warmpool/reconciler"
import { InMemoryCompute, InMemoryCredentials, InMemoryHealth, InMemoryRuntime } from "@warmpool/reconciler/testing"
import { PgIncarnations, PgInstanceStore, PgLeadership } from "../src/index.js"
import { currentDatabaseUrl, freshDatabase } from "../src/testing.js"
import { proxy } from "./support/tcp-proxy.js"

const serverUrl = inject("postgresUrl")

/** One replica: its own connection pool (through `url`), its leadership and its store. */
const replica = (url: string, holder: string, options: { ttl: Duration.DurationInput; renewEvery: Duration.DurationInput }) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      Layer.mergeAll(PgLeadership.layer({ name: "pool", holder, ...options }), PgInstanceStore.layer).pipe(
        Layer.provideMerge(
          PgClient.layer({ url: Redacted.make(url), maxConnections: 2, connectTimeout: Duration.seconds(1), applicationName: `warmpool-${holder}` })
        )
      )
    )
    return { leadership: Context.get(context, Leadership), store: Context.get(context, InstanceStore) }
  })

// Lease timing is real time: these tests run on the live clock (TestServices.provideLive).
const leads = (r: { leadership: Leadership["Type"] }) => Effect.map(r.leadership.whileLeader(Effect.void), Option.isSome)

describe("Postgres leadership", () => {
  it.layer(freshDatabase(serverUrl), { timeout: 60_000 })((it) => {
    it.effect("exactly one replica leads; cutting its connection hands the lease over within the ttl", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const target = new URL(yield* currentDatabaseUrl(serverUrl))
        const cutOff = yield* proxy(target)
        const viaProxy = new URL(target)
        viaProxy.hostname = "127.0.0.1"
        viaProxy.port = String(cutOff.port)
        const ttl = Duration.millis(1500)
        const a = yield* replica(viaProxy.toString(), "a", { ttl, renewEvery: Duration.millis(250) })
        const b = yield* replica(target.toString(), "b", { ttl, renewEvery: Duration.millis(250) })
        yield* Effect.sleep(Duration.millis(400))
        expect([yield* leads(a), yield* leads(b)]).toEqual([true, false])

        yield* cutOff.cut
        const cutAt = Date.now()
        // A stops acting as soon as a renewal fails; B takes over once the lease expires.
        yield* leads(b).pipe(Effect.filterOrFail((x) => x), Effect.retry(Schedule.spaced(Duration.millis(50)).pipe(Schedule.upTo(Duration.seconds(5)))))
        const tookOver = Date.now() - cutAt
        expect(tookOver).toBeLessThan(Duration.toMillis(ttl) + 600)
        yield* leads(a).pipe(Effect.filterOrFail((x) => !x), Effect.retry(Schedule.spaced(Duration.millis(50)).pipe(Schedule.upTo(Duration.seconds(2)))))
        const [lease] = yield* sql<{ holder: string; epoch: string }>`SELECT holder, epoch FROM warmpool_leases WHERE name = 'pool'`
        expect(lease).toEqual({ holder: "b", epoch: "2" })
      }).pipe(Effect.scoped, TestServices.provideLive))

    it.effect("terminating the leader's backends is not a lost leader: its pool reconnects, it keeps its lease and epoch", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const url = yield* currentDatabaseUrl(serverUrl)
        yield* sql`DELETE FROM warmpool_leases`
        const timing = { ttl: Duration.millis(1500), renewEvery: Duration.millis(250) }
        const a = yield* replica(url, "steady", timing)
        const b = yield* replica(url, "standby", timing)
        expect([yield* leads(a), yield* leads(b)]).toEqual([true, false])
        const killed = yield* sql<{ ok: boolean }>`
          SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'warmpool-steady'`
        expect(killed.length).toBeGreaterThan(0)
        // Two lease lifetimes: the standby never leads; the leader, after at most a failed renewal, leads again.
        const samples = yield* Effect.forEach(Array.from({ length: 15 }), () =>
          Effect.zipRight(Effect.sleep(Duration.millis(200)), Effect.all([leads(a), leads(b)])))
        expect(samples.filter(([, standby]) => standby)).toEqual([])
        expect(samples.slice(-3).every(([steady]) => steady)).toBe(true)
        const [lease] = yield* sql<{ holder: string; epoch: string }>`SELECT holder, epoch FROM warmpool_leases WHERE name = 'pool'`
        expect(lease).toEqual({ holder: "steady", epoch: "1" })
      }).pipe(Effect.scoped, TestServices.provideLive))

    it.effect("a leader that lost its lease without noticing lands no write once another took over", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const url = yield* currentDatabaseUrl(serverUrl)
        yield* sql`DELETE FROM warmpool_leases`
        // A renews only once an hour: after its first lease it is a paused process that still believes it leads.
        const a = yield* replica(url, "paused", { ttl: Duration.millis(600), renewEvery: Duration.hours(1) })
        const row = newInstance({ id: "fenced", pool: "pool", name: "agent-fenced", status: "starting", now: new Date() })
        yield* a.store.insert(row)
        expect(yield* leads(a)).toBe(true)
        yield* Effect.sleep(Duration.millis(700))
        const b = yield* replica(url, "successor", { ttl: Duration.seconds(5), renewEvery: Duration.seconds(1) })
        expect(yield* leads(b)).toBe(true)

        // A acts on its stale belief: every write is refused by the fence.
        const attempt = yield* a.leadership.whileLeader(Effect.all([
          Effect.either(a.store.transition({ id: "fenced", from: ["starting"], to: "idle" })),
          Effect.either(a.store.transitionMany([{ id: "fenced", from: ["starting"], to: "crashed" }])),
          Effect.either(a.store.insert(newInstance({ id: "late", pool: "pool", name: "agent-late", status: "creating", now: new Date() }))),
          Effect.either(a.store.remove("fenced", ["starting"]))
        ]))
        expect(Option.isSome(attempt)).toBe(true)
        const [transition, many, insert, remove] = Option.getOrThrow(attempt)
        expect(Either.isLeft(transition)).toBe(true)
        expect(Either.getOrThrow(many)).toEqual([])
        expect(Either.isLeft(insert)).toBe(true)
        expect(Either.getOrThrow(remove)).toBe(false)
        const rows = yield* sql<{ id: string; status: string }>`SELECT id, status FROM instances ORDER BY id`
        expect(rows).toEqual([{ id: "fenced", status: "starting" }])

        // The new leader's writes land; claims (unfenced) work for everyone.
        const moved = yield* b.leadership.whileLeader(b.store.transition({ id: "fenced", from: ["starting"], to: "idle" }))
        expect(Option.map(moved, (r) => r.status)).toEqual(Option.some("idle"))
        expect(yield* a.store.claimIdle("pool")).toHaveLength(1)
      }).pipe(Effect.scoped, TestServices.provideLive))

    it.effect("failover: with the default lease, the standby's first pass comes < 5 s after the leader's death", () =>
      Effect.gen(function*() {
        const url = yield* currentDatabaseUrl(serverUrl)
        const target = new URL(url)
        const cutOff = yield* proxy(target)
        const viaProxy = new URL(target)
        viaProxy.hostname = "127.0.0.1"
        viaProxy.port = String(cutOff.port)
        const spec = new PoolSpec({ name: "failover", namePrefix: "agent-", minIdle: 1, maxTotal: 5, template: { image: "img", env: {} } })
        const platform = yield* Layer.build(Layer.mergeAll(InMemoryCompute.layer(), InMemoryHealth.layer(), InMemoryCredentials.layer, InMemoryRuntime.layer()))
        // Passes only on triggers: an hour-long tick cannot be what wakes the standby.
        const controllerOf = (holder: string, databaseUrl: string) =>
          Layer.build(
            Controller.layer(spec, { tickInterval: Duration.hours(1) }).pipe(
              Layer.provide(Layer.mergeAll(PgLeadership.layer({ name: spec.name, holder }), PgInstanceStore.layer, PgIncarnations.layer)),
              Layer.provide(PgClient.layer({ url: Redacted.make(databaseUrl), maxConnections: 2, connectTimeout: Duration.seconds(1) })),
              Layer.provide(Layer.succeedContext(platform))
            )
          ).pipe(Effect.map((context) => Context.get(context, Controller)))
        const leader = yield* controllerOf("leader", viaProxy.toString())
        const standby = yield* controllerOf("standby", url)
        const appliedPass = (c: Controller["Type"], after: number) =>
          c.lastPass.pipe(
            Effect.map(Option.filter((p) => p.applied && p.startedAt.getTime() >= after)),
            Effect.flatMap(Option.match({ onNone: () => Effect.fail("not yet"), onSome: Effect.succeed })),
            Effect.retry(Schedule.spaced(Duration.millis(25)).pipe(Schedule.upTo(Duration.seconds(10))))
          )
        yield* appliedPass(leader, 0)
        expect(Option.map(yield* standby.lastPass, (p) => p.applied)).not.toEqual(Option.some(true))

        // The leader's process dies: its connections drop, it never releases the lease.
        yield* cutOff.cut
        const diedAt = Date.now()
        const first = yield* appliedPass(standby, diedAt)
        const failoverMs = first.startedAt.getTime() - diedAt
        console.log(`failover: the standby's first pass began ${failoverMs} ms after the leader died`)
        expect(failoverMs).toBeLessThan(5_000)
      }).pipe(Effect.scoped, TestServices.provideLive))

    it.effect("two controllers on one database: only the leader applies passes; both serve claims", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const url = yield* currentDatabaseUrl(serverUrl)
        const spec = new PoolSpec({ name: "replicated", namePrefix: "agent-", minIdle: 3, maxTotal: 10, template: { image: "img", env: {} } })
        // A platform of its own numbers its services from svc-1 again: the rows of earlier tests would clash with
        // them (service ids are unique), and a clash is now backed off rather than retried every pass (rule 12).
        yield* sql`DELETE FROM instances`
        // One platform, two replicas: each with its own connections, store and lease.
        const platform = yield* Layer.build(Layer.mergeAll(InMemoryCompute.layer(), InMemoryHealth.layer(), InMemoryCredentials.layer, InMemoryRuntime.layer()))
        const controllerOf = (holder: string) =>
          Layer.build(
            Controller.layer(spec, { background: false }).pipe(
              Layer.provide(Layer.mergeAll(PgLeadership.layer({ name: spec.name, holder, ttl: Duration.seconds(5) }), PgInstanceStore.layer, PgIncarnations.layer)),
              Layer.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 3 })),
              Layer.provide(Layer.succeedContext(platform))
            )
          ).pipe(Effect.map((context) => Context.get(context, Controller)))
        const first = yield* controllerOf("first")
        const second = yield* controllerOf("second")
        for (let i = 0; i < 3; i++) {
          const [a, b] = yield* Effect.all([first.runPass, second.runPass], { concurrency: 2 })
          expect([a.applied, b.applied]).toEqual([true, false])
          expect(b.listing).toBe("skipped")
        }
        const [{ n }] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM instances WHERE pool = ${spec.name}`
        expect(n).toBe(3) // created once, not by both
        const claimedByFollower = yield* second.claim({ label: "via-follower" })
        expect(claimedByFollower.instance.status).toBe("claimed")
      }).pipe(Effect.scoped, TestServices.provideLive))
  })
})

import { describe, expect, it } from "@effect/vitest"
import { SqlClient, Statement } from "@effect/sql"
import { Cause, Effect, Exit, Layer, Option, Ref } from "effect"
import { inject } from "vitest"
import { ComputeProvider, Controller, InstanceStore, newInstance, PoolSpec } from "@warmpool/reconciler"
import { PgInstanceStore, runMigrations } from "../src/index.js"
import { freshDatabase } from "../src/testing.js"
import { instanceStoreConformance } from "@warmpool/reconciler/conformance"
import { inMemoryServices } from "@warmpool/reconciler/testing"

const serverUrl = inject("postgresUrl")
const storeOn = (options: Parameters<typeof freshDatabase>[1] = {}) =>
  PgInstanceStore.layer.pipe(Layer.provideMerge(freshDatabase(serverUrl, options)))

instanceStoreConformance("postgres", storeOn())

const idleRow = (pool: string, i: number) =>
  newInstance({ id: `${pool}-${i}`, pool, name: `agent-${pool}-${i}`, status: "idle", serviceId: `svc-${pool}-${i}`, now: new Date(Date.UTC(2026, 0, 1) + i * 1000) })

describe("Postgres store", () => {
  it.layer(storeOn({ maxConnections: 12 }), { timeout: 120_000 })((it) => {
    it.effect("500 concurrent claims over 100 idle rows: exactly 100 distinct winners, 400 find none", () =>
      Effect.gen(function*() {
        const store = yield* InstanceStore
        yield* Effect.forEach(Array.from({ length: 100 }, (_, i) => idleRow("race", i)), (r) => store.insert(r), { concurrency: 10 })
        const results = yield* Effect.forEach(Array.from({ length: 500 }), () => store.claimIdle("race"), { concurrency: "unbounded" })
        const winners = results.flat().map((r) => r.id)
        expect(winners).toHaveLength(100)
        expect(new Set(winners).size).toBe(100)
        expect(results.filter((rows) => rows.length === 0)).toHaveLength(400)
        expect((yield* store.counts("race")).claiming).toBe(100)
      }), 120_000)

    it.effect("a pass planned before a claim and applied after it cannot overwrite the claim", () =>
      Effect.gen(function*() {
        const store = yield* InstanceStore
        yield* store.insert(idleRow("stale", 0))
        // The pass observes the row idle and plans to drain it (idle → deleting) and refresh it...
        const observed = (yield* store.list("stale"))[0]!
        expect(observed.status).toBe("idle")
        // ...a claim lands in between...
        expect(yield* store.claimIdle("stale")).toHaveLength(1)
        // ...and the pass's writes, compare-and-set on `idle`, do not apply.
        const applied = yield* store.transitionMany([
          { id: observed.id, from: ["idle"], to: "deleting" },
          { id: observed.id, from: ["idle"], to: "idle", patch: { deployStatus: "SLEEPING" } }
        ])
        expect(applied).toEqual([])
        expect((yield* Effect.flip(store.transition({ id: observed.id, from: ["idle"], to: "crashed" })))._tag).toBe("StaleStatusError")
        expect((yield* store.get(observed.id)).pipe(Option.map((r) => [r.status, r.deployStatus]))).toEqual(Option.some(["claiming", null]))
      }))

    it.effect("rows with a status this version does not know are left out and left alone", () =>
      Effect.gen(function*() {
        const store = yield* InstanceStore
        const sql = yield* SqlClient.SqlClient
        yield* store.insert(idleRow("future", 0))
        yield* sql`INSERT INTO instances (id, pool, name, status) VALUES ('future-x', 'future', 'agent-future-x', 'hibernating')`
        expect((yield* store.list("future")).map((r) => r.id)).toEqual(["future-0"])
        expect((yield* store.counts("future")).idle).toBe(1)
        const kept = yield* sql<{ status: string }>`SELECT status FROM instances WHERE id = 'future-x'`
        expect(kept).toEqual([{ status: "hibernating" }])
      }))

    it.effect("a pass reads a pool in a constant number of statements and writes its changes in batches", () =>
      Effect.gen(function*() {
        const countStatements = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
          Effect.gen(function*() {
            const count = yield* Ref.make(0)
            yield* effect.pipe(Statement.withTransformer((statement) => Ref.update(count, (n) => n + 1).pipe(Effect.as(statement))))
            return yield* Ref.get(count)
          })
        const passOver = (size: number) =>
          Effect.gen(function*() {
            const pool = `batch${size}`
            const spec = new PoolSpec({ name: pool, namePrefix: `${pool}-`, minIdle: 0, maxTotal: size * 2, template: { image: "img", env: {} } })
            const store = yield* InstanceStore
            const compute = yield* ComputeProvider
            const controller = yield* Controller.make(spec, { background: false })
            // Every row starting, its service running and healthy: one pass marks them all idle.
            for (let i = 0; i < size; i++) {
              const service = yield* compute.create({ name: `${pool}-${i}`, image: "img", env: {} })
              yield* store.insert(newInstance({ id: `${pool}-${i}`, pool, name: `${pool}-${i}`, status: "starting", serviceId: service.serviceId, url: service.url, now: new Date() }))
            }
            const statements = yield* countStatements(controller.runPass)
            expect((yield* store.counts(pool)).idle).toBe(size)
            return statements
          }).pipe(Effect.scoped)
        // The platform and health in memory (one platform for both pools), the rows in Postgres.
        const store = yield* InstanceStore
        const platform = Layer.merge(inMemoryServices(), Layer.succeed(InstanceStore, store))
        const [small, large] = yield* Effect.all([passOver(5), passOver(200)]).pipe(Effect.provide(platform))
        expect(large).toBe(small)
        expect(large).toBeLessThanOrEqual(3)
      }))
  })

  it.layer(freshDatabase(serverUrl, { migrate: false }), { timeout: 60_000 })((it) => {
    it.effect("an existing instances table migrates in place: rows and columns kept, its own columns read through a column map", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        // A table another program made: some of the store's columns, one of its own per map, one row per status.
        yield* sql`
          CREATE TABLE instances (
            id TEXT PRIMARY KEY, service_id TEXT UNIQUE, name TEXT, url TEXT, status TEXT,
            created_at TIMESTAMPTZ DEFAULT now(), claimed_at TIMESTAMPTZ, owner TEXT, api_token TEXT)`
        yield* sql`CREATE TABLE other_table (id TEXT PRIMARY KEY, data JSONB)`
        const statuses = ["starting", "idle", "claiming", "claimed", "crashed"]
        for (const [i, status] of statuses.entries()) {
          yield* sql`
            INSERT INTO instances (id, service_id, name, url, status, owner, created_at, claimed_at, api_token)
            VALUES (${`old${i}`}, ${`svc${i}`}, ${i === 0 ? null : `box-old${i}`}, ${`https://old${i}.example`}, ${status},
              ${status === "claimed" ? "tokyo" : null}, ${new Date(Date.UTC(2026, 5, 1, 0, i))},
              ${status === "claimed" ? new Date(Date.UTC(2026, 5, 2)) : null}, ${"ab".repeat(32)})`
        }
        yield* runMigrations
        yield* runMigrations // idempotent
        const columns = PgInstanceStore.layerWithColumns({ attributes: { owner: "owner" }, handles: { token: "api_token" } })
        const rows = yield* Effect.flatMap(InstanceStore, (s) => s.list("default")).pipe(Effect.provide(columns))
        expect(rows.map((r) => [r.id, r.status, r.pool])).toEqual(statuses.map((s, i) => [`old${i}`, s, "default"]))
        expect(rows[0]!.name).toBe("instance-old0") // a row without a name gets one
        const claimed = rows.find((r) => r.status === "claimed")!
        expect(claimed).toMatchObject({
          attributes: { owner: "tokyo" },
          handles: { token: "ab".repeat(32) },
          runtimeImage: null,
          failures: 0,
          lastError: null
        })
        expect(claimed.statusChangedAt).toEqual(new Date(Date.UTC(2026, 5, 2)))
        expect(rows.find((r) => r.status === "idle")!.statusChangedAt).toEqual(new Date(Date.UTC(2026, 5, 1, 0, 1)))
        // Writes go to the mapped column; a key without one goes to the map's JSON.
        const idle = rows.find((r) => r.status === "idle")!
        yield* Effect.flatMap(InstanceStore, (s) =>
          s.transition({ id: idle.id, from: ["idle"], to: "claimed", patch: { attributes: { owner: "osaka", extra: "kept as JSON" } } })
        ).pipe(Effect.provide(columns))
        expect(yield* sql`SELECT owner, attributes FROM instances WHERE id = ${idle.id}`).toEqual([
          { owner: "osaka", attributes: { extra: "kept as JSON" } }
        ])
        expect(yield* sql`SELECT count(*)::int AS n FROM other_table`).toEqual([{ n: 0 }])
      }))

    it.effect("a column map that names a bad or reserved column is refused at start, naming each problem", () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(
          Effect.flatMap(InstanceStore, (s) => s.list("default")).pipe(
            Effect.provide(PgInstanceStore.layerWithColumns({ handles: { a: "Bad-Name", b: "status" } }))
          )
        )
        const said = Exit.match(exit, { onFailure: Cause.pretty, onSuccess: () => "started" })
        expect(said).toContain('handles.a: "Bad-Name" is not a plain lower-case column name')
        expect(said).toContain('handles.b: "status" is one of the store\'s own columns')
      }))
  })
})

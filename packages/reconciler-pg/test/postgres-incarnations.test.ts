/**
 * Incarnations on Postgres: each run's session advisory lock says it is alive; a stopped run is gone at once,
 * and so is one whose process died (its backend ends). Claims carry the claimer's stamp.
 */
import { describe, expect, it } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Context, Duration, Effect, Exit, Layer, Redacted, Schedule, Scope, TestServices } from "effect"
import { inject } from "vitest"
import { Incarnations, InstanceStore, newInstance } from "@warmpool/reconciler"
import { PgIncarnations, PgInstanceStore } from "../src/index.js"
import { currentDatabaseUrl, freshDatabase } from "../src/testing.js"

const serverUrl = inject("postgresUrl")

/** One run of a server: its own pool of connections, named so that a test can end its backends. */
const run = (url: string, name: string) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(
      Layer.mergeAll(PgIncarnations.layer, PgInstanceStore.layer).pipe(
        Layer.provideMerge(PgClient.layer({ url: Redacted.make(url), maxConnections: 2, applicationName: `warmpool-${name}` }))
      ),
      scope
    )
    return { incarnations: Context.get(context, Incarnations), store: Context.get(context, InstanceStore), scope }
  })

describe("Postgres incarnations", () => {
  it.layer(freshDatabase(serverUrl), { timeout: 60_000 })((it) => {
    it.effect("every run is alive while it runs; a stopped one is gone at once, a killed one with its session; a broken connection is replaced", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const url = yield* currentDatabaseUrl(serverUrl)
        const a = yield* run(url, "a")
        const b = yield* run(url, "b")
        const c = yield* run(url, "c")
        expect(new Set([a.incarnations.self, b.incarnations.self, c.incarnations.self]).size).toBe(3)
        expect([...(yield* a.incarnations.alive)].sort()).toEqual([a.incarnations.self, b.incarnations.self, c.incarnations.self].sort())

        // B claims; its row says so.
        yield* a.store.insert(newInstance({ id: "one", pool: "pool", name: "agent-one", status: "idle", now: new Date() }))
        const [claimed] = yield* b.store.claimIdle("pool", 1, b.incarnations.self)
        expect(claimed!.intentBy).toBe(b.incarnations.self)
        expect((yield* sql<{ intent_by: string }>`SELECT intent_by FROM instances WHERE id = 'one'`)[0]!.intent_by).toBe(b.incarnations.self)

        // A stop: gone the moment its scope closes.
        yield* Scope.close(c.scope, Exit.void)
        expect((yield* a.incarnations.alive).has(c.incarnations.self)).toBe(false)

        // A process whose connection broke but which lives takes its lock again, under the same id.
        yield* sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'warmpool-b'`
        yield* Effect.sleep(Duration.millis(100))
        yield* a.incarnations.alive.pipe(
          Effect.filterOrFail((ids) => ids.has(b.incarnations.self)),
          Effect.retry(Schedule.spaced(Duration.millis(100)).pipe(Schedule.upTo(Duration.seconds(10))))
        )

        // A crash: a killed process's session ends with it, and its lock with the session. Here the "process" is
        // a bare session holding an incarnation's lock, with nothing to take it again.
        const doomed = 0x0d00_0001
        yield* Effect.flatMap(SqlClient.SqlClient, (other) => Effect.zipRight(other`SELECT pg_advisory_lock(${0x7770696e}, ${doomed})`, Effect.never)).pipe(
          Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1, applicationName: "warmpool-doomed" })),
          Effect.forkScoped // holds the session until the test ends, or the backend dies
        )
        yield* a.incarnations.alive.pipe(
          Effect.filterOrFail((ids) => ids.has("0d000001")),
          Effect.retry(Schedule.spaced(Duration.millis(20)).pipe(Schedule.upTo(Duration.seconds(2))))
        )
        yield* sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'warmpool-doomed'`
        const alive = yield* a.incarnations.alive.pipe(
          Effect.filterOrFail((ids) => !ids.has("0d000001")),
          Effect.retry(Schedule.spaced(Duration.millis(20)).pipe(Schedule.upTo(Duration.seconds(2))))
        )
        expect([...alive].sort()).toEqual([a.incarnations.self, b.incarnations.self].sort())
        yield* Scope.close(a.scope, Exit.void)
        yield* Scope.close(b.scope, Exit.void)
      }).pipe(Effect.scoped, TestServices.provideLive))
  })
})

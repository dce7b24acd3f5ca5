/**
 * Pool events over Postgres LISTEN/NOTIFY: the contract, a lost connection that says so, and two replicas on one
 * database where a claim waiting on one is served as soon as the other (the leader) makes an instance ready.
 */
import { describe, expect, layer as withLayer } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Context, Duration, Effect, Fiber, Layer, Redacted, Stream } from "effect"
import { inject } from "vitest"
import { Controller, Leadership, PoolEvents, PoolSpec, SingleLeader } from "@warmpool/reconciler"
import { PgIncarnations, PgInstanceStore, PgPoolEvents } from "../src/index.js"
import { currentDatabaseUrl, freshDatabase } from "../src/testing.js"
import { poolEventsConformance } from "@warmpool/reconciler/conformance"
import { InMemoryCompute, InMemoryComputeControl, InMemoryCredentials, InMemoryHealth, InMemoryRuntime, NeverLeader } from "@warmpool/reconciler/testing"
import { proxy } from "./support/tcp-proxy.js"

const serverUrl = inject("postgresUrl")

poolEventsConformance("postgres", PgPoolEvents.layer.pipe(Layer.provideMerge(freshDatabase(serverUrl))))

const client = (url: string) => PgClient.layer({ url: Redacted.make(url), maxConnections: 3, connectTimeout: Duration.seconds(2) })

const spec = new PoolSpec({ name: "pool", namePrefix: "agent-", minIdle: 0, maxTotal: 3, template: { image: "img", env: {} } })

/** One server process: its own connection pool, store, events and controller, over in-memory platform services. */
const replica = (url: string, leadership: Layer.Layer<Leadership>, background: boolean) =>
  Controller.layer(spec, { background, tickInterval: Duration.hours(1), waitingTickInterval: Duration.millis(100) }).pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        PgInstanceStore.layer,
        PgPoolEvents.layer,
        PgIncarnations.layer,
        leadership,
        InMemoryCompute.layer(),
        InMemoryHealth.layer(),
        InMemoryCredentials.layer,
        InMemoryRuntime.layer()
      ).pipe(Layer.provideMerge(client(url)))
    )
  )

/** A database of the test's own (the in-memory platforms of two tests would hand out the same service ids). */
const ownDatabase = Effect.flatMap(Layer.build(freshDatabase(serverUrl)), (context) => Effect.provide(currentDatabaseUrl(serverUrl), context))

describe("Pool events on Postgres", () => {
  withLayer(freshDatabase(serverUrl), { timeout: 60_000, excludeTestServices: true })((it) => {
    it.scoped("a lost listening connection ends the subscription with an error", () =>
      Effect.gen(function*() {
        const target = new URL(yield* currentDatabaseUrl(serverUrl))
        const cutOff = yield* proxy(target)
        const viaProxy = new URL(target)
        viaProxy.hostname = "127.0.0.1"
        viaProxy.port = String(cutOff.port)
        const events = yield* Effect.provide(PoolEvents, PgPoolEvents.layer.pipe(Layer.provide(client(viaProxy.toString()))))
        const outcome = yield* events.subscribe.pipe(
          Stream.tap((event) => (event._tag === "Listening" ? cutOff.cut : Effect.void)),
          Stream.runDrain,
          Effect.timeout(Duration.seconds(10)),
          Effect.flip
        )
        expect(outcome).toMatchObject({ _tag: "StoreError", operation: "poolEvents.listen", retryable: true })
      }))

    it.scoped("a claim waiting on a replica that does not lead is served when the leader makes an instance ready", () =>
      Effect.gen(function*() {
        const url = yield* ownDatabase
        const leader = yield* Layer.build(replica(url, SingleLeader, true))
        const follower = yield* Layer.build(replica(url, NeverLeader, false))
        const started = Date.now()
        // Nothing exists and minIdle is 0: only the waiting claim, heard over NOTIFY, makes the leader create.
        const result = yield* Context.get(follower, Controller).claim({ label: "far away" }, { waitMs: 30_000 })
        expect(result.instance).toMatchObject({ status: "claimed", attributes: { label: "far away" } })
        expect(Date.now() - started).toBeLessThan(15_000)
        const made = yield* Effect.provide(InMemoryComputeControl, leader).pipe(Effect.flatMap((c) => c.services))
        expect(made.map((s) => s.info.name)).toEqual([result.instance.name])
        // The follower's own platform was never asked for anything: it does not lead.
        expect(yield* Effect.provide(InMemoryComputeControl, follower).pipe(Effect.flatMap((c) => c.services))).toEqual([])
      }))

    it.scoped("a leader that starts after a claim began waiting elsewhere still hears of it, and serves it", () =>
      Effect.gen(function*() {
        const url = yield* ownDatabase
        const follower = yield* Layer.build(replica(url, NeverLeader, false))
        const claim = yield* Effect.fork(Context.get(follower, Controller).claim({ label: "early bird" }, { waitMs: 20_000 }))
        // The follower has said its count before anyone leads.
        yield* Effect.sleep(Duration.millis(300))
        yield* Layer.build(replica(url, SingleLeader, true))
        const result = yield* Fiber.join(claim)
        expect(result.instance).toMatchObject({ status: "claimed", attributes: { label: "early bird" } })
      }))
  })
})

/**
 * Waiting claims: the time from the moment a row becomes idle (the leader's pass lands `starting → idle`) to
 * the moment the claim that waited for it is answered, provisioning included. In one process, and across two
 * replicas on one Postgres, where the waiter hears of the row over LISTEN/NOTIFY.
 */
import { PgClient } from "@effect/sql-pg"
import { Context, Duration, Effect, Fiber, Layer, Logger, LogLevel, Redacted, Ref, Schedule } from "effect"
import { Controller, InstanceStore, Leadership, PoolSpec, SingleLeader } from "@warmpool/reconciler"
import { PgIncarnations, PgInstanceStore, PgPoolEvents } from "../src/index.js"
import { currentDatabaseUrl, freshDatabase, testServer } from "../src/testing.js"
import { InMemoryCompute, InMemoryCredentials, InMemoryHealth, InMemoryRuntime, inMemoryServices, NeverLeader } from "@warmpool/reconciler/testing"

const SAMPLES = 21
const spec = new PoolSpec({ name: "bench", namePrefix: "bench-", minIdle: 0, maxTotal: 1_000, template: { image: "img", env: {} } })

/** When the last `starting → idle` change landed, by the wrapped store. */
const watchIdle = (landed: Ref.Ref<number>) =>
  Layer.effect(
    InstanceStore,
    Effect.map(InstanceStore, (inner): Context.Tag.Service<InstanceStore> => ({
      ...inner,
      transitionMany: (changes) =>
        Effect.tap(inner.transitionMany(changes), (applied) =>
          changes.some((c) => c.to === "idle" && c.from.includes("starting") && applied.includes(c.id))
            ? Ref.set(landed, performance.now())
            : Effect.void)
    }))
  )

/** One waiting claim on `waiter`, served by an instance `leader` creates and marks idle: idle → answer, ms. */
const sample = (leader: Controller["Type"], waiter: Controller["Type"], landed: Ref.Ref<number>) =>
  Effect.gen(function*() {
    const claim = yield* Effect.fork(waiter.claim({ label: "bench" }, { waitMs: 30_000 }))
    // The leader has heard of the waiting claim when its plan wants a create for it.
    yield* leader.preview.pipe(
      Effect.filterOrFail((actions) => actions.some((a) => a._tag === "Create")),
      Effect.retry(Schedule.spaced(Duration.millis(1)).pipe(Schedule.upTo(Duration.seconds(10))))
    )
    yield* leader.runPass // creates
    yield* leader.runPass // marks it idle: the waiter takes it
    yield* Fiber.join(claim)
    return performance.now() - (yield* Ref.get(landed))
  })

const median = (samples: ReadonlyArray<number>) => [...samples].sort((a, b) => a - b)[Math.floor(samples.length / 2)]!

const inProcess = Effect.gen(function*() {
  const landed = yield* Ref.make(0)
  const controller = Context.get(
    yield* Layer.build(Controller.layer(spec, { background: false }).pipe(Layer.provide(watchIdle(landed)), Layer.provideMerge(inMemoryServices()))),
    Controller
  )
  return median(yield* Effect.forEach(Array.from({ length: SAMPLES }), () => sample(controller, controller, landed)))
})

/** A replica: its own connection pool, store and events; the platform in memory. */
const replica = (url: string, leadership: Layer.Layer<Leadership>, landed: Ref.Ref<number>) =>
  Controller.layer(spec, { background: false }).pipe(
    Layer.provide(watchIdle(landed)),
    Layer.provideMerge(
      Layer.mergeAll(PgInstanceStore.layer, PgPoolEvents.layer, PgIncarnations.layer, leadership, InMemoryCompute.layer(), InMemoryHealth.layer(), InMemoryCredentials.layer, InMemoryRuntime.layer())
        .pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(url), maxConnections: 4 })))
    )
  )

const acrossReplicas = Effect.gen(function*() {
  const { url: serverUrl } = yield* testServer
  // The replicas go before their database does.
  return yield* Effect.scoped(Effect.gen(function*() {
    const url = yield* currentDatabaseUrl(serverUrl)
    const landed = yield* Ref.make(0)
    const leader = Context.get(yield* Layer.build(replica(url, SingleLeader, landed)), Controller)
    const follower = Context.get(
      yield* Layer.build(replica(url, NeverLeader, landed)),
      Controller
    )
    return median(yield* Effect.forEach(Array.from({ length: SAMPLES }), () => sample(leader, follower, landed)))
  })).pipe(Effect.provide(freshDatabase(serverUrl)))
})

export const run = async (): Promise<Record<string, number>> => {
  const [local, pg] = await Effect.runPromise(
    Effect.all([inProcess, acrossReplicas]).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))
  )
  return { "claim.wait.idle_to_answer.ms": local, "claim.wait.idle_to_answer.pg.ms": pg }
}

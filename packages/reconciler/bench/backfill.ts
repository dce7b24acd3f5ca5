/**
 * Event-driven backfill: the time from a claim to the create call it causes, through the real
 * Controller's background loop (in-memory services, real clock). The tick is an hour, so only the
 * claim's trigger can explain the create.
 */
import { type Context, Duration, Effect, Layer, Logger, LogLevel, Ref, Schedule } from "effect"
import { ComputeProvider, Controller, PoolSpec } from "../src/index.js"
import { inMemoryServices } from "../src/testing/index.js"

const spec = new PoolSpec({ name: "bench", namePrefix: "bench-", minIdle: 3, maxTotal: 1_000, template: { image: "img", env: {} } })

const claimToCreate = Effect.gen(function*() {
  const createdAt = yield* Ref.make<ReadonlyArray<number>>([])
  const watched = Layer.effect(
    ComputeProvider,
    Effect.map(ComputeProvider, (inner): Context.Tag.Service<ComputeProvider> => ({
      ...inner,
      create: (request) => Effect.zipRight(Ref.update(createdAt, (ts) => [...ts, performance.now()]), inner.create(request))
    }))
  )
  const layer = Controller.layer(spec, { background: true, tickInterval: Duration.hours(1) }).pipe(
    Layer.provide(watched),
    Layer.provideMerge(inMemoryServices())
  )
  return yield* Effect.scoped(Effect.gen(function*() {
    const controller = yield* Controller
    yield* controller.runPass // creates
    yield* controller.runPass // marks them idle
    const before = (yield* Ref.get(createdAt)).length
    const claimed = performance.now()
    yield* controller.claim({ label: "bench" })
    const backfill = yield* Ref.get(createdAt).pipe(
      Effect.filterOrFail((ts) => ts.length > before),
      Effect.retry(Schedule.spaced(Duration.millis(1)).pipe(Schedule.upTo(Duration.seconds(5))))
    )
    return backfill[before]! - claimed
  }).pipe(Effect.provide(layer)))
})

export const run = async (): Promise<Record<string, number>> => {
  const samples = await Effect.runPromise(
    Effect.forEach(Array.from({ length: 31 }), () => claimToCreate).pipe(Logger.withMinimumLogLevel(LogLevel.Warning))
  )
  const sorted = [...samples].sort((a, b) => a - b)
  return { "backfill.claim_to_create.ms": sorted[Math.floor(sorted.length / 2)]! }
}

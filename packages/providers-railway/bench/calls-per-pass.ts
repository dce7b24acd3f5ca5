/**
 * Railway calls per reconcile pass for a steady pool (nothing to change) of 100 and of 1,000 services:
 * the real Controller, the Railway provider on the emulator, rows in memory. Target: ceil(services / page)
 * list calls and zero mutations.
 */
import { type ComputeProvider, Controller, InstanceStore, LocalIncarnations, newInstance, PoolSpec, type ProviderError, SingleLeader } from "@warmpool/reconciler"
import { InMemoryCredentials, InMemoryHealth, InMemoryRuntime, InMemoryStore } from "@warmpool/reconciler/testing"
import { Duration, Effect, Layer, Logger, LogLevel, Redacted } from "effect"
import { RailwayCompute } from "../src/index.js"
import { startRailwayEmulator } from "../src/emulator/index.js"

const PAGE_SIZE = 100
const MUTATIONS = ["ServiceCreateBatch", "ServiceLaunchBatch", "ServiceDelete", "ProjectCreate", "ProjectDelete", "VolumeCreate", "VolumeDelete"]

type RailwayEmulator = Effect.Effect.Success<ReturnType<typeof startRailwayEmulator>>

/**
 * Calls and mutations of one steady pass: a row for every service (idle, as listed), one pass to settle what
 * the rows and the platform disagree on, then the pass counted.
 */
export const measureSteadyPass = (
  emulator: RailwayEmulator,
  spec: PoolSpec,
  services: ReadonlyArray<ReturnType<RailwayEmulator["addService"]>>,
  compute: Layer.Layer<ComputeProvider, ProviderError>
) =>
  Effect.gen(function*() {
    const store = yield* InstanceStore
    for (const service of services) {
      yield* store.insert(newInstance({
        id: service.name.slice(spec.namePrefix.length),
        pool: spec.name,
        name: service.name,
        status: "idle",
        serviceId: service.id,
        url: `https://${service.domain}`,
        deployStatus: "SUCCESS",
        now: new Date(service.createdAt)
      }))
    }
    const controller = yield* Controller
    yield* controller.runPass
    emulator.resetCounts()
    const summary = yield* controller.runPass
    const operations = emulator.operations()
    const mutations = MUTATIONS.reduce((n, name) => n + (operations[name] ?? 0), 0)
    if (summary.listing !== "complete") throw new Error("bench pass did not list")
    return { calls: Object.values(operations).reduce((a, b) => a + b, 0), mutations }
  }).pipe(
    Effect.provide(Controller.layer(spec, { background: false }).pipe(
      Layer.provideMerge(Layer.mergeAll(compute, InMemoryStore.layer, InMemoryHealth.layer(), InMemoryCredentials.layer, InMemoryRuntime.layer(), SingleLeader, LocalIncarnations.layer()))
    ))
  )

const steadyPass = (size: number) =>
  Effect.gen(function*() {
    const emulator = yield* startRailwayEmulator({ deployMs: 0, maxPageSize: PAGE_SIZE })
    const spec = new PoolSpec({ name: "bench", namePrefix: "convos-agent-", minIdle: size, maxTotal: size * 2, template: { image: "img", env: {} } })
    const services = Array.from({ length: size }, (_, i) => emulator.addService(`convos-agent-${i}`))
    const compute = RailwayCompute.layer({
      token: Redacted.make(emulator.accountToken),
      tokenKind: "account",
      projectId: emulator.projectId,
      environment: { id: emulator.environments[0]!.id },
      runtimeImage: "img",
      apiUrl: emulator.apiUrl,
      ratePerSecond: 10_000,
      ratePerHour: 1_000_000,
      pageSize: PAGE_SIZE,
      timeout: Duration.seconds(10)
    })
    return yield* measureSteadyPass(emulator, spec, services, compute)
  }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))

export const run = async (): Promise<Record<string, number>> => {
  const hundred = await Effect.runPromise(steadyPass(100))
  const thousand = await Effect.runPromise(steadyPass(1_000))
  return {
    "railway.calls_per_pass.100": hundred.calls,
    "railway.calls_per_pass.1000": thousand.calls,
    "railway.mutations_per_pass.1000": thousand.mutations,
    "railway.page_size": PAGE_SIZE
  }
}

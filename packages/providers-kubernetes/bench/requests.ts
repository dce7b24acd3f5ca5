/**
 * Kubernetes API requests of a pool (issue 24), counted at the emulator (the provider's own user; the test
 * kubelet's calls are its own and not counted): the real Controller over the Kubernetes provider, rows in memory.
 * - `kubernetes.requests_per_hour.quiet`: a full pool (min idle 3), nothing happening, the watch open: an hour of
 *   the 5-minute tick (12 passes). Goal 0 list calls (target ≤ 1 request); `kubernetes.list_calls_per_hour.quiet`
 *   says how many of them were lists.
 * - `kubernetes.requests_per_claim` (target ≤ 3): 12 claims, each replaced by a new Pod (its Pod and its
 *   Secret), counted from the first claim until every replacement is idle.
 */
import { Controller, LocalIncarnations, PoolSpec, SingleLeader } from "@warmpool/reconciler"
import { InMemoryCredentials, InMemoryStore, InMemoryStoreControl } from "@warmpool/reconciler/testing"
import { InMemoryConvosRuntime } from "@warmpool/providers-convos/testing"
import { KubeConfig } from "@kubernetes/client-node"
import { Effect, Layer, Logger, LogLevel, Schedule } from "effect"
import { KubernetesCompute } from "../src/index.js"
import { makeKubelet, startKubeEmulator } from "../src/emulator/index.js"

const NAMESPACE = "bench"
const CLAIMS = 12
const TICKS_PER_HOUR = 12 // WEBHOOK_TICK_INTERVAL_MS: the server's tick with the Kubernetes provider
const spec = new PoolSpec({ name: "default", namePrefix: "convos-agent-", minIdle: 3, maxTotal: 50, template: { image: "runtime:v1", env: { PORT: "8080" } } })

const measure = Effect.gen(function*() {
  const emulator = yield* startKubeEmulator({ namespace: NAMESPACE })
  const kubeConfig = new KubeConfig()
  kubeConfig.loadFromString(emulator.kubeconfig)
  const services = yield* Layer.build(Layer.mergeAll(
    KubernetesCompute.layer({ namespace: NAMESPACE }, kubeConfig),
    InMemoryStore.layer,
    InMemoryCredentials.layer,
    InMemoryConvosRuntime.layer(),
    SingleLeader,
    LocalIncarnations.layer()
  ))
  const kubelet = makeKubelet(emulator.kubeconfigFor("kubelet"), NAMESPACE)
  const controller = yield* Controller.make(spec, { background: false }).pipe(Effect.provide(services))
  const requests = () => emulator.calls().filter((c) => c.user === "warmpool")
  const idle = Effect.map(Effect.flatMap(InMemoryStoreControl, (c) => c.rows), (rows) => rows.filter((r) => r.status === "idle").length).pipe(Effect.provide(services))
  /** Passes, the kubelet starting what they made, until `minIdle` are idle (the watch brings each change). */
  const refill = Effect.gen(function*() {
    yield* controller.runPass
    yield* kubelet.startAll
    if ((yield* idle) < spec.minIdle) return yield* Effect.fail("not yet")
  }).pipe(Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("60 seconds"))))

  yield* refill
  const quietFrom = requests().length
  yield* Effect.repeatN(controller.runPass, TICKS_PER_HOUR - 1)
  const quiet = requests().slice(quietFrom)

  const claimsFrom = requests().length
  for (let i = 0; i < CLAIMS; i++) {
    yield* controller.claim({ agentName: `bench-${i}`, instructions: "" })
    yield* refill
  }
  const perClaim = (requests().length - claimsFrom) / CLAIMS
  return {
    "kubernetes.requests_per_hour.quiet": quiet.length,
    "kubernetes.list_calls_per_hour.quiet": quiet.filter((c) => c.verb === "list").length,
    "kubernetes.requests_per_claim": perClaim
  }
}).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))

export const run = (): Promise<Record<string, number>> => Effect.runPromise(measure)

/**
 * With the Kubernetes provider: the Pod watch's events wake the pool they belong to, as Railway's webhooks do.
 * A change (a Pod Ready, gone, crashing, given its address) asks its pool for a pass; the pass reads the provider's
 * cache, so it costs the API server nothing. Events are triggers, never the truth: a missed one costs a tick.
 */
import { Pools } from "@warmpool/reconciler"
import { Effect, Layer, Option, Stream } from "effect"

/** Only with the Kubernetes provider (its client is loaded on demand: see `computeLayer`). */
export const kubernetesWatchTriggers = Layer.scopedDiscard(
  Effect.gen(function*() {
    const { Kubernetes } = yield* Effect.promise(() => import("@warmpool/providers-kubernetes"))
    // Provided with the compute layer, whose type says only ComputeProvider: looked up, not required.
    const kubernetes = yield* Effect.serviceOption(Kubernetes)
    if (Option.isNone(kubernetes)) return
    const pools = yield* Pools
    yield* kubernetes.value.changes.pipe(
      Stream.runForEach((change) => {
        const controller = pools.all.find((c) => c.spec.name === change.pool)
        return controller === undefined ? Effect.void : controller.trigger
      }),
      Effect.forkScoped
    )
    yield* Effect.log(`kubernetes: watching the Pods of namespace ${kubernetes.value.namespace}; their changes start passes`)
  })
)

import { Effect, Layer, Ref } from "effect"
import { randomUUID } from "node:crypto"
import { Incarnations } from "./services.js"

/** Who is alive, as processes sharing one memory know it (tests, simulations, a single server). */
export type IncarnationRegistry = Ref.Ref<ReadonlySet<string>>

export const makeIncarnationRegistry: Effect.Effect<IncarnationRegistry> = Ref.make<ReadonlySet<string>>(new Set())

/**
 * An incarnation alive while its layer's scope is open, in a registry shared by the incarnations that can see
 * each other's rows. Closing the scope (a stop, or an interrupted fiber standing for a killed process) ends it.
 */
export const LocalIncarnations = {
  layer: (registry?: IncarnationRegistry): Layer.Layer<Incarnations> =>
    Layer.scoped(
      Incarnations,
      Effect.gen(function*() {
        const shared = registry ?? (yield* makeIncarnationRegistry)
        const self = randomUUID()
        yield* Effect.acquireRelease(
          Ref.update(shared, (alive) => new Set(alive).add(self)),
          () => Ref.update(shared, (alive) => new Set([...alive].filter((id) => id !== self)))
        )
        return { self, alive: Ref.get(shared) }
      })
    )
}

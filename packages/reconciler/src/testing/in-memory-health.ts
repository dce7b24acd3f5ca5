import { Context, Effect, Layer, Ref } from "effect"
import type { ProbeAnswer } from "../domain/observation.js"
import { HealthProbe } from "../services.js"

/** Sets what `/pool/health` answers, per instance or for all. */
export class InMemoryHealthControl extends Context.Tag("@warmpool/reconciler/testing/InMemoryHealthControl")<
  InMemoryHealthControl,
  {
    readonly set: (id: string, health: ProbeAnswer) => Effect.Effect<void>
    readonly setDefault: (health: ProbeAnswer) => Effect.Effect<void>
    /** Ids probed so far, in order. */
    readonly probed: Effect.Effect<ReadonlyArray<string>>
  }
>() {}

/** A `HealthProbe` that answers from a table (default: every instance is ready). */
export const InMemoryHealth = {
  layer: (fallback: ProbeAnswer = "ready") =>
    Layer.effectContext(
      Effect.gen(function*() {
        const answers = yield* Ref.make(new Map<string, ProbeAnswer>())
        const byDefault = yield* Ref.make<ProbeAnswer>(fallback)
        const probed = yield* Ref.make<ReadonlyArray<string>>([])
        const probe: Context.Tag.Service<HealthProbe> = {
          check: ({ id }) =>
            Ref.update(probed, (ids) => [...ids, id]).pipe(
              Effect.zipRight(Effect.all([Ref.get(answers), Ref.get(byDefault)])),
              Effect.map(([table, other]) => table.get(id) ?? other)
            )
        }
        const control: Context.Tag.Service<InMemoryHealthControl> = {
          set: (id, health) => Ref.update(answers, (table) => new Map(table).set(id, health)),
          setDefault: (health) => Ref.set(byDefault, health),
          probed: Ref.get(probed)
        }
        return Context.make(HealthProbe, probe).pipe(Context.add(InMemoryHealthControl, control))
      })
    )
}

import { Context, Effect, Layer, Ref } from "effect"
import type { ProviderError } from "../errors.js"
import { Credentials } from "../services.js"
import { type Faults, makeFaults } from "./faults.js"

/** Inspection and fault injection for the in-memory credentials. */
export class InMemoryCredentialsControl extends Context.Tag("@warmpool/reconciler/testing/InMemoryCredentialsControl")<
  InMemoryCredentialsControl,
  Faults<ProviderError> & {
    /** Names of the instances whose credentials are live. */
    readonly live: Effect.Effect<ReadonlyArray<string>>
  }
>() {}

/**
 * Credentials in memory: one secret per instance name, its handle recorded in the row as `inMemoryKey`.
 * Issuing twice for one name replaces the secret (no leak); releasing works by name, as real providers must.
 */
export const InMemoryCredentials = {
  layer: Layer.effectContext(
    Effect.gen(function*() {
      const live = yield* Ref.make(new Map<string, string>())
      const faults = yield* makeFaults<ProviderError>()
      const credentials: Context.Tag.Service<Credentials> = {
        issue: (instance) =>
          faults.guard("issue").pipe(
            Effect.zipRight(Ref.updateAndGet(live, (m) => new Map(m).set(instance.name, `secret-${instance.name}`))),
            Effect.map((m) => ({
              env: { INSTANCE_SECRET: m.get(instance.name)! },
              handles: { inMemoryKey: `key-${instance.name}` }
            }))
          ),
        release: (instance) =>
          faults.guard("release").pipe(
            Effect.zipRight(Ref.update(live, (m) => {
              const copy = new Map(m)
              copy.delete(instance.name)
              return copy
            }))
          )
      }
      const control: Context.Tag.Service<InMemoryCredentialsControl> = {
        failNext: faults.failNext,
        setLatency: faults.setLatency,
        calls: faults.calls,
        live: Ref.get(live).pipe(Effect.map((m) => [...m.keys()].sort()))
      }
      return Context.make(Credentials, credentials).pipe(Context.add(InMemoryCredentialsControl, control))
    })
  )
}

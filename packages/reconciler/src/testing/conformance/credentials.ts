/**
 * The `Credentials` contract: issued credentials are released on every path, releasing is idempotent,
 * and a row that lost its recorded handles is still released (by instance name).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import { applyPatch, newInstance } from "../../domain/instance.js"
import { Credentials } from "../../services.js"

export interface CredentialsConformanceOptions<R> {
  /** Whether credentials issued for this instance name are live at the provider. */
  readonly isLive: (instanceName: string) => Effect.Effect<boolean, unknown, R>
}

let sequence = 0
const instance = () => {
  const id = `conf${Date.now().toString(36)}${(sequence++).toString(36)}`
  return newInstance({ id, pool: "conformance", name: `instance-${id}`, status: "creating", now: new Date() })
}

export const credentialsConformance = <E, R>(
  name: string,
  layer: Layer.Layer<Credentials | R, E>,
  options: CredentialsConformanceOptions<R>
) =>
  describe(`Credentials conformance: ${name}`, () => {
    it.layer(layer, { timeout: 60_000 })((it) => {
      it.effect("issue makes live credentials; release removes them, twice is fine", () =>
        Effect.gen(function*() {
          const credentials = yield* Credentials
          const row = instance()
          const issued = yield* credentials.issue(row)
          expect(yield* options.isLive(row.name)).toBe(true)
          const recorded = applyPatch(row, { handles: issued.handles })
          yield* credentials.release(recorded)
          expect(yield* options.isLive(row.name)).toBe(false)
          yield* credentials.release(recorded)
        }))

      it.effect("a row without its recorded handles is released by name", () =>
        Effect.gen(function*() {
          const credentials = yield* Credentials
          const row = instance()
          yield* credentials.issue(row)
          yield* credentials.release(row)
          expect(yield* options.isLive(row.name)).toBe(false)
        }))

      it.effect("issuing again for one instance (a retried create) leaves nothing behind after release", () =>
        Effect.gen(function*() {
          const credentials = yield* Credentials
          const row = instance()
          yield* credentials.issue(row)
          const second = yield* credentials.issue(row)
          yield* credentials.release(applyPatch(row, { handles: second.handles }))
          expect(yield* options.isLive(row.name)).toBe(false)
        }))
    })
  })

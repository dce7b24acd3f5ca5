/**
 * The `ComputeProvider` contract (Crossplane-style idempotent Observe/Create/Delete), for any
 * implementation: in-memory, Railway on its emulator, local processes, yours.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import { ComputeProvider } from "../../services.js"

export interface ComputeProviderConformanceOptions {
  /** The image to create services from. */
  readonly image?: string
  /** Env to create services with. */
  readonly env?: Readonly<Record<string, string>>
}

let sequence = 0
/** A prefix unique to one test, so tests may share a platform. */
const uniquePrefix = () => `conf${Date.now().toString(36)}${(sequence++).toString(36)}-`

export const computeProviderConformance = <E>(
  name: string,
  layer: Layer.Layer<ComputeProvider, E>,
  options: ComputeProviderConformanceOptions = {}
) =>
  describe(`ComputeProvider conformance: ${name}`, () => {
    const request = (serviceName: string) => ({ name: serviceName, image: options.image ?? "runtime:latest", env: options.env ?? { A: "1" } })

    it.layer(layer, { timeout: 60_000 })((it) => {
      it.effect("a created service is listed under its prefix, with its id and url", () =>
        Effect.gen(function*() {
          const compute = yield* ComputeProvider
          const prefix = uniquePrefix()
          const created = yield* compute.create(request(`${prefix}a`))
          expect(created.serviceId).not.toBe("")
          const listed = yield* compute.list(prefix)
          expect(listed.map((s) => [s.serviceId, s.name])).toEqual([[created.serviceId, `${prefix}a`]])
          expect(listed[0]!.url).toBe(created.url)
        }))

      it.effect("creating a name that exists returns the existing service, never a twin", () =>
        Effect.gen(function*() {
          const compute = yield* ComputeProvider
          const prefix = uniquePrefix()
          const first = yield* compute.create(request(`${prefix}a`))
          const again = yield* compute.create(request(`${prefix}a`))
          expect(again.serviceId).toBe(first.serviceId)
          expect((yield* compute.list(prefix)).length).toBe(1)
        }))

      it.effect("listing returns only services with the prefix", () =>
        Effect.gen(function*() {
          const compute = yield* ComputeProvider
          const prefix = uniquePrefix()
          const other = uniquePrefix()
          yield* compute.create(request(`${prefix}a`))
          yield* compute.create(request(`${prefix}b`))
          yield* compute.create(request(`${other}c`))
          expect((yield* compute.list(prefix)).map((s) => s.name).sort()).toEqual([`${prefix}a`, `${prefix}b`])
          expect((yield* compute.list(other)).map((s) => s.name)).toEqual([`${other}c`])
        }))

      it.effect("destroy removes the service; destroying it again, or an unknown id, succeeds", () =>
        Effect.gen(function*() {
          const compute = yield* ComputeProvider
          const prefix = uniquePrefix()
          const created = yield* compute.create(request(`${prefix}a`))
          yield* compute.destroy(created.serviceId)
          expect(yield* compute.list(prefix)).toEqual([])
          yield* compute.destroy(created.serviceId)
          yield* compute.destroy(`${prefix}never-existed`)
        }))
    })
  })

/** A pool on the in-memory services, with every control handle, for controller tests. */
import { Layer } from "effect"
import { Controller, type ControllerOptions, PoolSpec } from "../../src/index.js"
import { type InMemoryComputeOptions, inMemoryServices } from "../../src/testing/index.js"

export const testSpec = (overrides: Partial<ConstructorParameters<typeof PoolSpec>[0]> = {}) =>
  new PoolSpec({
    name: "pool",
    namePrefix: "agent-",
    minIdle: 2,
    maxTotal: 10,
    template: { image: "runtime:latest", env: { SHARED: "1" } },
    ...overrides
  })

/** The controller (no background passes unless asked) over fresh in-memory services, all exposed. */
export const world = (spec: PoolSpec, options: ControllerOptions = {}, compute: InMemoryComputeOptions = {}) =>
  Controller.layer(spec, { background: false, ...options }).pipe(Layer.provideMerge(inMemoryServices(compute)))

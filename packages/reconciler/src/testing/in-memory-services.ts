import { Layer } from "effect"
import type { InstanceRuntime } from "../services.js"
import { type IncarnationRegistry, LocalIncarnations } from "../incarnations.js"
import { SingleLeader } from "../leadership.js"
import { InMemoryCompute, type InMemoryComputeOptions } from "./in-memory-compute.js"
import { InMemoryCredentials } from "./in-memory-credentials.js"
import { InMemoryHealth } from "./in-memory-health.js"
import { InMemoryRuntime, type InMemoryRuntimeControl } from "./in-memory-runtime.js"
import { InMemoryStore } from "./in-memory-store.js"

/**
 * Every service a Controller needs, in memory, with their control handles: a pool to test against. Its runtime
 * is the generic session one unless another is given (e.g. `InMemoryRuntime.make(...)` of your runtime's claim).
 */
export const inMemoryServices = (
  compute: InMemoryComputeOptions = {},
  registry?: IncarnationRegistry,
  runtime: Layer.Layer<InstanceRuntime | InMemoryRuntimeControl> = InMemoryRuntime.layer()
) =>
  Layer.mergeAll(
    LocalIncarnations.layer(registry),
    InMemoryCompute.layer(compute),
    InMemoryStore.layer,
    InMemoryHealth.layer(),
    InMemoryCredentials.layer,
    runtime,
    SingleLeader
  )

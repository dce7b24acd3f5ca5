import { Layer } from "effect"
import { type IncarnationRegistry, LocalIncarnations } from "../incarnations.js"
import { SingleLeader } from "../leadership.js"
import { InMemoryCompute, type InMemoryComputeOptions } from "./in-memory-compute.js"
import { InMemoryCredentials } from "./in-memory-credentials.js"
import { InMemoryHealth } from "./in-memory-health.js"
import { InMemoryRuntime } from "./in-memory-runtime.js"
import { InMemoryStore } from "./in-memory-store.js"

/** Every service a Controller needs, in memory, with their control handles: a pool to test against. */
export const inMemoryServices = (compute: InMemoryComputeOptions = {}, registry?: IncarnationRegistry) =>
  Layer.mergeAll(
    LocalIncarnations.layer(registry),
    InMemoryCompute.layer(compute),
    InMemoryStore.layer,
    InMemoryHealth.layer(),
    InMemoryCredentials.layer,
    InMemoryRuntime.layer(),
    SingleLeader
  )

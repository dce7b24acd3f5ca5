/** The conformance suites, run against the in-memory implementations (other packages run them against theirs). */
import { Effect } from "effect"
import { InProcessPoolEvents } from "../src/index.js"
import { computeProviderConformance, credentialsConformance, instanceStoreConformance, poolEventsConformance } from "../src/testing/conformance/index.js"
import { InMemoryCompute, InMemoryCredentials, InMemoryCredentialsControl, InMemoryStore } from "../src/testing/index.js"

instanceStoreConformance("in-memory", InMemoryStore.layer)
computeProviderConformance("in-memory", InMemoryCompute.layer())
credentialsConformance("in-memory", InMemoryCredentials.layer, {
  isLive: (name) => Effect.flatMap(InMemoryCredentialsControl, (c) => c.live).pipe(Effect.map((live) => live.includes(name)))
})
poolEventsConformance("in-process", InProcessPoolEvents.layer)

/** The conformance suites, run against the in-memory implementations (other packages run them against theirs). */
import { Effect } from "effect"
import {
  computeProviderConformance,
  credentialsConformance,
  InMemoryCompute,
  InMemoryCredentials,
  InMemoryCredentialsControl,
  InMemoryStore,
  instanceStoreConformance
} from "../src/testing/index.js"

instanceStoreConformance("in-memory", InMemoryStore.layer)
computeProviderConformance("in-memory", InMemoryCompute.layer())
credentialsConformance("in-memory", InMemoryCredentials.layer, {
  isLive: (name) => Effect.map(InMemoryCredentialsControl, (c) => c.live).pipe(Effect.flatten, Effect.map((live) => live.includes(name)))
})

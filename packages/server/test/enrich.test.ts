import { describe, expect, it } from "@effect/vitest"
import { RailwayCompute, RailwayServiceVariables } from "@warmpool/providers-railway"
import { startRailwayEmulator } from "@warmpool/providers-railway/emulator"
import { ComputeProvider, InstanceStore, newInstance } from "@warmpool/reconciler"
import { InMemoryStore, InMemoryStoreControl } from "@warmpool/reconciler/testing"
import { Duration, Effect, Layer, Redacted } from "effect"
import { enrich } from "../src/index.js"

describe("db:enrich", () => {
  it.live("fills missing url, runtime_image, gateway_token and inbox id from Railway; a dry run writes nothing", () =>
    Effect.gen(function*() {
      const emulator = yield* startRailwayEmulator({ deployMs: 0 })
      const options = {
        token: Redacted.make(emulator.accountToken),
        tokenKind: "account" as const,
        projectId: emulator.projectId,
        environment: { name: "production" },
        runtimeImage: "img",
        apiUrl: emulator.apiUrl,
        ratePerSecond: 100,
        ratePerHour: 10_000,
        pageSize: 100,
        timeout: Duration.seconds(5)
      }
      const layer = Layer.mergeAll(RailwayCompute.layer(options), RailwayServiceVariables.layer(options), InMemoryStore.layer)
      yield* Effect.gen(function*() {
        const compute = yield* ComputeProvider
        const store = yield* InstanceStore
        const made = yield* compute.create({ name: "convos-agent-old", image: "ghcr.io/x/runtime:7", env: { OPENCLAW_GATEWAY_TOKEN: "f".repeat(64), AGENTMAIL_INBOX_ID: "old@agentmail.to" } })
        // A seed-era row: service id known, the rest missing.
        yield* store.insert(newInstance({ id: "old", pool: "default", name: "convos-agent-old", status: "claimed", serviceId: made.serviceId, now: new Date() }))
        const dry = yield* enrich({ pool: "default", namePrefix: "convos-agent-", dryRun: true, all: false })
        expect(dry).toEqual([{
          id: "old",
          changes: {
            url: { from: null, to: made.url },
            runtimeImage: { from: null, to: "ghcr.io/x/runtime:7" },
            gatewayToken: { from: null, to: "f".repeat(64) },
            agentmailInboxId: { from: null, to: "old@agentmail.to" }
          }
        }])
        expect((yield* Effect.flatMap(InMemoryStoreControl, (c) => c.rows))[0]!.url).toBeNull()
        yield* enrich({ pool: "default", namePrefix: "convos-agent-", dryRun: false, all: false })
        expect((yield* Effect.flatMap(InMemoryStoreControl, (c) => c.rows))[0]).toMatchObject({
          status: "claimed",
          url: made.url,
          runtimeImage: "ghcr.io/x/runtime:7",
          handles: { gatewayToken: "f".repeat(64), agentmailInboxId: "old@agentmail.to" }
        })
        expect(yield* enrich({ pool: "default", namePrefix: "convos-agent-", dryRun: false, all: false })).toEqual([])
      }).pipe(Effect.provide(layer))
    }).pipe(Effect.scoped))
})

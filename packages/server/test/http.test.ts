/** The HTTP API over real loopback HTTP, on in-memory services: the seed's contract, auth, and bad input. */
import { describe, expect, it } from "@effect/vitest"
import { Controller, PoolSpec } from "@warmpool/reconciler"
import { InMemoryRuntimeControl, InMemoryStoreControl } from "@warmpool/reconciler/testing"
import { Effect } from "effect"
import { call, KEY, spec, world } from "./support/http-world.js"
import { SCALAR_SCRIPT } from "../src/http/docs.js"

const fill = Effect.flatMap(Controller, (c) => Effect.repeatN(c.runPass, 1))

describe("HTTP API", () => {
  it.live("healthz and counts are open; everything else needs the bearer key", () =>
    Effect.gen(function*() {
      yield* fill
      expect(yield* call("GET", "/healthz", { key: null })).toMatchObject({ status: 200, json: { ok: true } })
      expect(yield* call("GET", "/api/pool/counts", { key: null })).toMatchObject({ status: 200, json: { idle: 2, claimed: 0 } })
      for (const [method, path] of [["GET", "/api/pool/status"], ["POST", "/api/pool/reconcile"], ["GET", "/api/pool/plan"], ["DELETE", "/api/pool/instances/x"]] as const) {
        expect((yield* call(method, path, { key: null })).status).toBe(401)
        expect((yield* call(method, path, { key: "wrong-key-0123456789" })).status).toBe(401)
      }
    }).pipe(Effect.provide(world())))

  it.live("claim answers the seed's shape; status lists instances without their secrets", () =>
    Effect.gen(function*() {
      yield* fill
      const claim = yield* call("POST", "/api/pool/claim", { body: { agentName: "tokyo-trip-planner", instructions: "plan" } })
      expect(claim.status).toBe(200)
      expect(Object.keys(claim.json).sort()).toEqual(["agentName", "conversationId", "gatewayToken", "gatewayUrl", "instanceId", "inviteUrl", "joined", "status"])
      const status = yield* call("GET", "/api/pool/status")
      expect(status.json.counts).toMatchObject({ claimed: 1, idle: 1 })
      const claimed = status.json.instances.find((i: { id: string }) => i.id === claim.json.instanceId)
      expect(claimed).toMatchObject({ status: "claimed", agentName: "tokyo-trip-planner" })
      expect(status.text).not.toMatch(/gatewayToken|openrouterKeyHash|hash-convos/)
    }).pipe(Effect.provide(world())))

  it.live("no idle instance is a 503 with Retry-After; failed provisioning on every attempt is a 502", () =>
    Effect.gen(function*() {
      const none = yield* call("POST", "/api/pool/claim", { body: { agentName: "a", instructions: "" } })
      expect(none.status).toBe(503)
      expect(none.headers.get("retry-after")).toBe("5")
      yield* fill
      yield* Effect.flatMap(InMemoryRuntimeControl, (c) => c.setDefault("bound"))
      const failed = yield* call("POST", "/api/pool/claim", { body: { agentName: "a", instructions: "" } })
      expect(failed.status).toBe(502)
      expect(failed.json.message).toContain("provisioning failed on every attempt")
    }).pipe(Effect.provide(world())))

  it.live("bad input is a 4xx that says what is wrong, and changes nothing", () =>
    Effect.gen(function*() {
      yield* fill
      const before = yield* Effect.flatMap(InMemoryStoreControl, (c) => c.rows)
      const cases = [
        [yield* call("POST", "/api/pool/claim", { body: "{\"agentName\":" }), 400, "not valid JSON"],
        [yield* call("POST", "/api/pool/claim", { body: { agentName: 7, instructions: "" } }), 400, "agentName"],
        [yield* call("POST", "/api/pool/claim", { body: { agentName: "", instructions: "" } }), 400, "agentName must be a string of 1 to 200 characters"],
        [yield* call("POST", "/api/pool/claim", { body: { agentName: "a", instructions: "", joinUrl: "https://popup.convos.org/v2?i=1" } }), 400, "popup.convos.org"],
        [yield* call("POST", "/api/pool/drain", { body: { count: -1 } }), 400, "count must be a whole number from 1 to 100"],
        [yield* call("POST", "/api/pool/replenish", { body: { count: 1e9 } }), 400, "count must be a whole number from 1 to 100"],
        [yield* call("POST", "/api/pool/drain", { body: "count=3", contentType: "text/plain" }), 400, "count"],
        [yield* call("POST", "/api/pool/claim", { body: { agentName: "a".repeat(70_000), instructions: "" } }), 413, "limited to 65536 bytes"],
        [yield* call("DELETE", "/api/pool/crashed/nope"), 404, "no instance nope"]
      ] as const
      for (const [answer, status, says] of cases) {
        expect(answer.status, answer.text).toBe(status)
        expect(answer.json?.message ?? "", answer.text).toContain(says)
      }
      expect(yield* Effect.flatMap(InMemoryStoreControl, (c) => c.rows)).toEqual(before)
    }).pipe(Effect.provide(world())))

  it.live("production refuses dev.convos.org join links", () =>
    Effect.gen(function*() {
      yield* fill
      const answer = yield* call("POST", "/api/pool/claim", { body: { agentName: "a", instructions: "", joinUrl: "https://dev.convos.org/v2?i=1" } })
      expect(answer.status).toBe(400)
      expect(answer.json.message).toContain("dev.convos.org")
    }).pipe(Effect.provide(world("production"))))

  it.live("replenish, drain, reconcile, plan, kill and dismiss", () =>
    Effect.gen(function*() {
      const plan = yield* call("GET", "/api/pool/plan")
      expect(plan.json.actions.map((a: { kind: string }) => a.kind)).toEqual(["Create", "Create"])
      expect((yield* Effect.flatMap(InMemoryStoreControl, (c) => c.rows)).length).toBe(0) // a dry run
      const replenished = yield* call("POST", "/api/pool/replenish", { body: { count: 1 } })
      expect(replenished.json.planned.Create).toBe(3)
      expect((yield* call("POST", "/api/pool/replenish")).status).toBe(200)
      yield* call("POST", "/api/pool/reconcile")
      const drained = yield* call("POST", "/api/pool/drain", { body: { count: 1 } })
      expect(drained.json.drained).toHaveLength(1)
      const claim = yield* call("POST", "/api/pool/claim", { body: { agentName: "a", instructions: "" } })
      expect((yield* call("DELETE", `/api/pool/crashed/${claim.json.instanceId}`)).status).toBe(409)
      expect((yield* call("DELETE", `/api/pool/instances/${claim.json.instanceId}`)).json.status).toBe("deleting")
      expect((yield* call("DELETE", `/api/pool/instances/${claim.json.instanceId}`)).status).toBe(409)
      const reconcile = yield* call("POST", "/api/pool/reconcile")
      expect(reconcile.json.planned.Delete).toBeGreaterThanOrEqual(2)
    }).pipe(Effect.provide(world())))

  it.live("metrics, openapi and the docs page; the dashboard never contains the key", () =>
    Effect.gen(function*() {
      yield* fill
      yield* call("POST", "/api/pool/claim", { body: { agentName: "a", instructions: "" } })
      const metrics = yield* call("GET", "/metrics", { key: null })
      expect(metrics.text).toContain('warmpool_instances{pool="pool",status="idle"}')
      expect(metrics.text).toMatch(/warmpool_claim_duration_seconds_bucket\{le="[\d.]+"\} \d+/)
      expect(metrics.text).toContain("# TYPE warmpool_passes_total counter")
      const openapi = yield* call("GET", "/openapi.json", { key: null })
      expect(Object.keys(openapi.json.paths)).toEqual(
        expect.arrayContaining([
          "/api/pool/claim",
          "/api/pool/claim/stream",
          "/api/pool/self-destruct",
          "/api/pool/status",
          "/api/pool/crashed/{id}",
          "/api/pool/settings",
          "/api/pool/pools/{name}",
          "/api/pool/recheck/{id}",
          "/api/pool/agents",
          "/api/pool/drain/stream",
          "/api/pool/replenish/stream",
          "/api/pool/upgrade/stream",
          "/api/pool/info",
          "/api/pool/scope",
          "/version"
        ])
      )
      expect(Object.keys(openapi.json.paths["/api/pool/settings"])).toEqual(["get", "put"])
      // Without the server's Postgres there is no settings table: said, not a crash.
      const noTable = yield* call("GET", "/api/pool/settings")
      expect(noTable.status).toBe(501)
      expect(noTable.json.message).toMatch(/Postgres/)
      // The docs page embeds the description and loads Scalar's viewer from jsDelivr, not a 6.5 MB inline bundle.
      const docs = yield* call("GET", "/docs", { key: null })
      expect(docs.status).toBe(200)
      expect(docs.text).toContain(`<script src="${SCALAR_SCRIPT}"`)
      const embedded = /<script id="api-reference" type="application\/json">(.*?)<\/script>/s.exec(docs.text)?.[1]
      expect(JSON.parse(embedded!)).toEqual(openapi.json)
      expect(docs.text.length).toBeLessThan(openapi.text.length + 2_000)
      const page = yield* call("GET", "/", { key: null })
      expect(page.status).toBe(200)
      expect(page.text).toContain("<title>warmpool</title>")
      expect(page.text).not.toContain(KEY)
    }).pipe(Effect.provide(world())))

  it.live("an autoscaling pool shows its sizing inputs and decision in plan, status and metrics; a fixed pool shows none", () =>
    Effect.gen(function*() {
      expect((yield* call("GET", "/api/pool/plan")).json.sizing).toBeUndefined()
    }).pipe(
      Effect.provide(world()),
      Effect.zipRight(Effect.gen(function*() {
        yield* fill
        yield* call("POST", "/api/pool/claim", { body: { agentName: "a", instructions: "" } })
        const plan = yield* call("GET", "/api/pool/plan")
        expect(plan.status).toBe(200)
        // By pool. One claim in the last minute is no burst: the long window's rate, 1 claim / 900 s.
        const sizing = plan.json.sizing.auto
        expect(sizing).toMatchObject({ burst: false, readyPercentile: 90, targetWarm: 2, claimsPerSecondShort: 1 / 60 })
        expect(sizing.claimsPerSecond).toBeCloseTo(1 / 900, 6)
        expect(sizing.summary).toMatch(/^λ = 0\.0011\/s, ready in \d+ s \(p90\) → 2 warm$/)
        expect((yield* call("GET", "/api/pool/status")).json.pools.auto.sizing.summary).toBe(sizing.summary)
        // Gauges follow the passes (a dry run changes nothing).
        yield* call("POST", "/api/pool/reconcile")
        const metrics = yield* call("GET", "/metrics", { key: null })
        expect(metrics.text).toContain('warmpool_autoscale_warm{pool="auto",decision="target"} 2')
        expect(metrics.text).toMatch(/warmpool_autoscale_claims_per_second\{pool="auto",window="short"\} 0\.01666/)
        expect(metrics.text).toContain('warmpool_autoscale_ready_seconds{pool="auto",quantile="0.9"}')
      }).pipe(Effect.provide(world("dev", new PoolSpec({ ...spec, name: "auto", autoscale: { targetMissRate: 0.01, maxIdle: 5, scaleDownAfterMs: 600_000 } })))))
    ))
})

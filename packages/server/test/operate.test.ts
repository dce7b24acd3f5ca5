/**
 * Operating the pool as the replaced system's clients do, end to end: the HTTP API on loopback, a Controller and
 * a Postgres lease per pool, the rows and `pool_settings` in Postgres, instances on the in-memory platform (which
 * outlives a server restart, as a real platform does).
 */
import { SqlClient } from "@effect/sql"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { currentTemplate, InstanceStore, PoolSpec } from "@warmpool/reconciler"
import { PgIncarnations, PgInstanceStore } from "@warmpool/reconciler-pg"
import { freshDatabase } from "@warmpool/reconciler-pg/testing"
import { InMemoryCompute, InMemoryCredentials, InMemoryHealth, InMemoryHealthControl } from "@warmpool/reconciler/testing"
import { InMemoryConvosRuntime } from "@warmpool/providers-convos/testing"
import { Duration, Effect, Layer, Option, Redacted, Schedule } from "effect"
import { createServer } from "node:http"
import { inject } from "vitest"
import { httpApiLayer, settledPoolsLayer } from "../src/index.js"
import { migrateServerTables } from "../src/migrations.js"
import { baseUrl, caller } from "./support/http.js"

const KEY = "operate-test-key-0123456789"
const CLAIM_KEY = "claim-only-key-0123456789"
const call = caller(KEY)
const V1 = "ghcr.io/xmtplabs/convos-runtime:v1"
const V2 = "ghcr.io/xmtplabs/convos-runtime:v2"

const pool = (name: string, minIdle: number, maxTotal = 10) =>
  new PoolSpec({ name, namePrefix: `convos-${name}-`, minIdle, maxTotal, listingGraceMs: 5_000, template: { image: V1, env: { RUNTIME: name } } })

interface Options {
  readonly protectedInstances?: ReadonlyArray<string>
  readonly health?: "ready" | "not-ready"
}

/** A replica of the server for `specs` over the database and platform in context; a restart is a new one on the same two. */
const server = (specs: ReadonlyArray<PoolSpec>, options: Options = {}) =>
  httpApiLayer({
    environment: "dev",
    apiKey: Redacted.make(KEY),
    claimKeys: [Redacted.make(CLAIM_KEY)],
    deployment: { environment: "staging", branch: "main", railwayServiceId: "svc-pool" }
  }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
    Layer.provideMerge(settledPoolsLayer(specs, {
      tickInterval: Duration.millis(100),
      pollInterval: Duration.millis(100),
      protectedInstances: options.protectedInstances ?? []
    })),
    Layer.provideMerge(Layer.mergeAll(
      PgInstanceStore.layer,
      PgIncarnations.layer,
      InMemoryHealth.layer(options.health ?? "ready"),
      InMemoryCredentials.layer,
      InMemoryConvosRuntime.layer()
    ))
  )

const platform = () =>
  Layer.mergeAll(InMemoryCompute.layer({ deployTime: Duration.millis(200) }), freshDatabase(inject("postgresUrl"), { migrate: migrateServerTables }))

/** Polls `check` until it holds (bounded). */
const eventually = <A, R>(what: string, check: Effect.Effect<A | undefined, never, R>) =>
  check.pipe(
    Effect.flatMap((value) => (value === undefined ? Effect.fail(what) : Effect.succeed(value))),
    Effect.retry(Schedule.spaced(Duration.millis(50)).pipe(Schedule.upTo(Duration.seconds(20)))),
    Effect.orDieWith((what) => new Error(`timed out waiting for ${what}`))
  )

const counts = Effect.map(call("GET", "/api/pool/counts", { key: null }), (r) => r.json)
const idleIs = (pool: string, n: number) => eventually(`${n} idle in ${pool}`, Effect.map(counts, (c) => (c.pools[pool]?.idle === n ? c : undefined)))
const instances = Effect.map(call("GET", "/api/pool/status"), (r) => r.json.instances as Array<{ id: string; pool: string; status: string; templateHash: string }>)

/** A progress stream read to its end: its `data:` events, in order. */
const stream = (path: string, key = KEY) =>
  Effect.gen(function*() {
    const url = yield* baseUrl
    const response = yield* Effect.promise(() => fetch(`${url}${path}`, { headers: { authorization: `Bearer ${key}` } }))
    const text = yield* Effect.promise(() => response.text())
    const events = text.split("\n\n").filter((frame) => frame.startsWith("data: ")).map((frame) => JSON.parse(frame.slice(6)))
    return { status: response.status, contentType: response.headers.get("content-type"), events, text }
  })

describe("pool settings (GET/PUT /api/pool/settings, PUT /api/pool/pools/:name)", () => {
  it.live("target_idle changes the default pool's minimum idle live, refuses bad input whole, survives a restart and reaches every replica", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const specs = [pool("openclaw", 2), pool("hermes", 1)]
      yield* Effect.scoped(Effect.gen(function*() {
        yield* idleIs("openclaw", 2)
        expect((yield* call("GET", "/api/pool/settings")).json).toEqual({ target_idle: "2" })

        const put = yield* call("PUT", "/api/pool/settings", { body: { target_idle: "4" } })
        expect(put.status, put.text).toBe(200)
        expect(put.json).toEqual({ target_idle: "4" })
        yield* idleIs("openclaw", 4)
        expect((yield* call("GET", "/api/pool/status")).json.pools.openclaw.minIdle).toBe(4)
        expect(yield* sql`SELECT key, value FROM pool_settings`).toEqual([{ key: "target_idle", value: "4" }])

        // The replaced system skipped non-strings and read "5abc" as 5: each is refused here, saying why, and nothing changes.
        for (const body of [{ target_idle: 5 }, { target_idle: "5abc" }, { target_idle: "51" }, { target_idle: "-1" }, { nope: "1" }, { target_idle: "3", nope: "1" }, ["3"]]) {
          const refused = yield* call("PUT", "/api/pool/settings", { body })
          expect(refused.status, JSON.stringify(body)).toBe(400)
          expect(refused.json.target_idle).toBe("4")
          expect(refused.json.errors.length).toBeGreaterThan(0)
        }
        expect((yield* call("PUT", "/api/pool/settings", { body: { target_idle: "5abc" } })).json.errors).toEqual([
          "invalid value for target_idle: 5abc (a whole number from 0 to 50)"
        ])
        expect((yield* call("PUT", "/api/pool/settings", { body: { nope: "1" } })).json.errors).toEqual(["unknown setting: nope (known: target_idle)"])
        // Within 0–50 but above the pool's maxTotal (10): refused with the POOLS validation's words.
        const tooMany = yield* call("PUT", "/api/pool/settings", { body: { target_idle: "11" } })
        expect(tooMany.status).toBe(400)
        expect(tooMany.json.errors.join()).toMatch(/maxTotal \(10\) must be ≥ minIdle \(11\)/)
        expect((yield* call("GET", "/api/pool/settings")).json).toEqual({ target_idle: "4" })
        expect(yield* sql`SELECT value FROM pool_settings WHERE key = 'target_idle'`).toEqual([{ value: "4" }])

        // A second replica on the same database hears a change made on the first one.
        const first = yield* baseUrl
        yield* Effect.scoped(Effect.gen(function*() {
          expect((yield* call("GET", "/api/pool/settings")).json).toEqual({ target_idle: "4" })
          const response = yield* Effect.promise(() =>
            fetch(`${first}/api/pool/settings`, { method: "PUT", headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" }, body: JSON.stringify({ target_idle: "3" }) }))
          expect(response.status).toBe(200)
          yield* eventually("the other replica applies target_idle 3", Effect.map(call("GET", "/api/pool/status"), (r) => (r.json.pools.openclaw.minIdle === 3 ? true : undefined)))
        }).pipe(Effect.provide(server(specs))))
      }).pipe(Effect.provide(server(specs))))

      // A restart starts from the stored value, not the declared one.
      yield* Effect.scoped(Effect.gen(function*() {
        expect((yield* call("GET", "/api/pool/settings")).json).toEqual({ target_idle: "3" })
        expect((yield* call("GET", "/api/pool/status")).json.pools.openclaw.minIdle).toBe(3)
      }).pipe(Effect.provide(server(specs))))
    }).pipe(Effect.provide(platform())), 90_000)

  it.live("PUT /api/pool/pools/:name changes sizes, image and env live (a new image rolls the pool), validated as POOLS is", () =>
    Effect.gen(function*() {
      const specs = [pool("openclaw", 2), pool("hermes", 1)]
      yield* Effect.scoped(Effect.gen(function*() {
        yield* idleIs("hermes", 1)
        const changed = yield* call("PUT", "/api/pool/pools/hermes", { body: { minIdle: 2, maxTotal: 4, image: V2, env: { MODEL: "v2" } } })
        expect(changed.status, changed.text).toBe(200)
        const expectedHash = currentTemplate(new PoolSpec({ ...specs[1]!, template: { image: V2, env: { RUNTIME: "hermes", MODEL: "v2" } } })).hash
        expect(changed.json).toEqual({ name: "hermes", default: false, minIdle: 2, maxTotal: 4, maxSurge: 1, image: V2, templateHash: expectedHash })
        // The rollout: every unclaimed hermes instance ends on the new template, two of them idle.
        yield* eventually("hermes rolled onto V2", Effect.map(instances, (all) => {
          const hermes = all.filter((i) => i.pool === "hermes")
          return hermes.length === 2 && hermes.every((i) => i.status === "idle" && i.templateHash === expectedHash) ? true : undefined
        }))
        // The default pool's minIdle is the seed's target_idle: one value, whichever route sets it.
        expect((yield* call("PUT", "/api/pool/pools/openclaw", { body: { minIdle: 3 } })).status).toBe(200)
        expect((yield* call("GET", "/api/pool/settings")).json).toEqual({ target_idle: "3" })

        for (const [body, words] of [
          [{ minIdle: 5, maxTotal: 4 }, /maxTotal \(4\) must be ≥ minIdle \(5\)/],
          [{ minIdle: -1 }, /minIdle must be a whole number ≥ 0/],
          [{ image: "" }, /image must not be empty/],
          [{ namePrefix: "x-" }, /namePrefix: cannot change while the pool runs/],
          [{ env: { POOL_API_KEY: "mine" } }, /POOL_API_KEY is set by the server/],
          [{ env: ["x"] }, /env must be an object of strings/]
        ] as const) {
          const refused = yield* call("PUT", "/api/pool/pools/hermes", { body })
          expect(refused.status, JSON.stringify(body)).toBe(400)
          expect(refused.json.message).toMatch(words)
        }
        expect((yield* call("GET", "/api/pool/status")).json.pools.hermes).toMatchObject({ minIdle: 2, maxTotal: 4, image: V2 })
        const unknown = yield* call("PUT", "/api/pool/pools/nope", { body: { minIdle: 1 } })
        expect(unknown.status).toBe(404)
        expect(unknown.json.message).toMatch(/known pools: openclaw, hermes/)
        // null goes back to the declared value.
        expect((yield* call("PUT", "/api/pool/pools/hermes", { body: { image: null, env: null } })).json.image).toBe(V1)
      }).pipe(Effect.provide(server(specs))))
    }).pipe(Effect.provide(platform())), 90_000)
})

describe("PROTECTED_INSTANCES", () => {
  it.live("a protected instance is never claimed, killed, dismissed, drained or upgraded; the pool fills beside it", () =>
    Effect.gen(function*() {
      const specs = [pool("openclaw", 2)]
      const kept = yield* Effect.scoped(Effect.gen(function*() {
        yield* idleIs("openclaw", 2)
        return (yield* instances)[0]!.id
      }).pipe(Effect.provide(server(specs))))

      yield* Effect.scoped(Effect.gen(function*() {
        // Not warm: the pool keeps two claimable instances beside it.
        yield* idleIs("openclaw", 3)
        for (const answer of [
          yield* call("DELETE", `/api/pool/instances/${kept}`),
          yield* call("DELETE", `/api/pool/crashed/${kept}`),
          yield* call("POST", `/api/pool/instances/${kept}/upgrade`)
        ]) {
          expect(answer.status, answer.text).toBe(409)
          expect(answer.json.message).toMatch(new RegExp(`instance ${kept} is protected \\(PROTECTED_INSTANCES\\)`))
        }
        const drained = yield* call("POST", "/api/pool/drain", { body: { count: 10 } })
        expect(drained.json.drained).toHaveLength(2)
        expect(drained.json.drained).not.toContain(kept)
        const upgrade = yield* stream(`/api/pool/upgrade/stream?ids=${kept}`)
        expect(upgrade.events.at(-1)).toMatchObject({ type: "complete", upgraded: 0, failed: 1, total: 1 })
        yield* idleIs("openclaw", 3)
        const claimed: Array<string> = []
        for (let i = 0; i < 4; i++) {
          const claim = yield* call("POST", "/api/pool/claim", { body: { agentName: `a${i}`, waitMs: 10_000 } })
          expect(claim.status, claim.text).toBe(200)
          claimed.push(claim.json.instanceId)
        }
        expect(claimed).not.toContain(kept)
        const row = (yield* instances).find((i) => i.id === kept)
        expect(row?.status).toBe("idle")
      }).pipe(Effect.provide(server(specs, { protectedInstances: [kept] }))))
    }).pipe(Effect.provide(platform())), 90_000)
})

describe("recheck, agents, info, version", () => {
  it.live("POST /api/pool/recheck/:id probes now and reconciles; /agents lists by status; /info and /version say where it runs", () =>
    Effect.gen(function*() {
      const health = yield* InMemoryHealthControl
      const starting = yield* eventually("two starting instances", Effect.map(instances, (all) => {
        const rows = all.filter((i) => i.status === "starting")
        return rows.length === 2 ? rows : undefined
      }))
      const id = starting[0]!.id
      expect((yield* call("POST", `/api/pool/recheck/${id}`)).json).toEqual({ ok: true, id, status: "starting", changed: false, reason: "health_failed" })
      yield* health.set(id, { health: "ready", runtimeVersion: "1.0.0" })
      expect((yield* call("POST", `/api/pool/recheck/${id}`)).json).toEqual({ ok: true, id, status: "idle", changed: true, reason: "ready" })
      expect((yield* InstanceStore.pipe(Effect.flatMap((store) => store.get(id)))).pipe(Option.map((r) => r.attributes.runtimeVersion))).toEqual(Option.some("1.0.0"))
      // Upgraded in place: a recheck records the version the runtime reports now.
      yield* health.set(id, { health: "ready", runtimeVersion: "1.1.0" })
      expect((yield* call("POST", `/api/pool/recheck/${id}`)).json).toEqual({ ok: true, id, status: "idle", changed: false, reason: "healthy" })
      expect((yield* InstanceStore.pipe(Effect.flatMap((store) => store.get(id)))).pipe(Option.map((r) => r.attributes.runtimeVersion))).toEqual(Option.some("1.1.0"))
      const missing = yield* call("POST", "/api/pool/recheck/nope")
      expect(missing.status).toBe(404)

      yield* health.setDefault("ready")
      yield* idleIs("openclaw", 2)
      const claim = yield* call("POST", "/api/pool/claim", { body: { agentName: "tokyo", instructions: "You plan trips." } })
      const agents = yield* call("GET", "/api/pool/agents")
      expect(Object.keys(agents.json)).toEqual(["claimed", "pendingAcceptance", "tainted", "crashed", "idle", "starting"])
      expect(agents.json.claimed).toEqual([expect.objectContaining({ id: claim.json.instanceId, status: "claimed", agentName: "tokyo", instructions: "You plan trips." })])
      expect(agents.json.claimed[0]).not.toHaveProperty("gatewayToken")
      expect(agents.json.pendingAcceptance).toEqual([])
      expect((yield* call("GET", "/api/pool/agents", { key: null })).status).toBe(401)

      expect((yield* call("GET", "/api/pool/info", { key: null })).json).toEqual({ environment: "staging", branch: "main", railwayServiceId: "svc-pool" })
      expect((yield* call("GET", "/version", { key: null })).json).toEqual({ version: expect.stringMatching(/^\d+\.\d+\.\d+/), environment: "staging" })
    }).pipe(Effect.provide(server([pool("openclaw", 2)], { health: "not-ready" })), Effect.provide(platform())), 60_000)
})

describe("progress streams", () => {
  it.live("drain, replenish and upgrade stream their steps, then complete with counts", () =>
    Effect.gen(function*() {
      yield* idleIs("openclaw", 2)
      const replenished = yield* stream("/api/pool/replenish/stream?count=2")
      expect(replenished.status).toBe(200)
      expect(replenished.contentType).toMatch(/text\/event-stream/)
      const done = replenished.events.filter((e) => e.type === "step" && e.step === "done")
      expect(done.map((e) => e.instanceNum).sort()).toEqual([1, 2])
      for (const event of done) expect(event).toEqual({ type: "step", instanceNum: event.instanceNum, instanceId: expect.any(String), step: "done", status: "ok", message: "" })
      expect(replenished.events.filter((e) => e.type === "instance")).toHaveLength(2)
      expect(replenished.events.at(-1)).toMatchObject({ type: "complete", created: 2, failed: 0, counts: { pools: { openclaw: expect.any(Object) } } })
      expect(replenished.events.at(-1).counts.creating + replenished.events.at(-1).counts.starting + replenished.events.at(-1).counts.idle).toBe(4)

      yield* idleIs("openclaw", 4)
      const drained = yield* stream("/api/pool/drain/stream?count=3&concurrency=2")
      const steps = drained.events.filter((e) => e.type === "step")
      for (const event of steps) expect(Object.keys(event).sort()).toEqual(["instanceId", "instanceName", "instanceNum", "message", "status", "step", "type"])
      const complete = drained.events.at(-1)
      expect(complete).toMatchObject({ type: "complete", drained: 3, failed: 0 })
      expect(complete.drainedIds).toHaveLength(3)
      expect(steps.filter((e) => e.step === "done").map((e) => e.instanceId).sort()).toEqual([...complete.drainedIds].sort())
      const left = yield* instances
      for (const id of complete.drainedIds) expect(left.some((i) => i.id === id)).toBe(false)

      const claim = yield* call("POST", "/api/pool/claim", { body: { agentName: "a" } })
      const upgraded = yield* stream(`/api/pool/upgrade/stream?ids=${claim.json.instanceId},nope&image=${encodeURIComponent(V2)}`)
      expect(upgraded.events.filter((e) => e.type === "info").map((e) => e.instanceId)).toEqual([claim.json.instanceId, "nope"])
      expect(upgraded.events).toContainEqual({ type: "step", instanceNum: 1, instanceId: claim.json.instanceId, step: "done", status: "ok", message: V2, targetImage: V2, targetTag: "v2" })
      expect(upgraded.events).toContainEqual({ type: "step", instanceNum: 2, instanceId: "nope", step: "error", status: "fail", message: "Instance not found" })
      expect(upgraded.events.at(-1)).toMatchObject({ type: "complete", upgraded: 1, failed: 1, total: 2 })
      expect((yield* instances).find((i) => i.id === claim.json.instanceId)).toMatchObject({ status: "claimed" })

      expect((yield* stream("/api/pool/upgrade/stream")).status).toBe(400)
      expect((yield* stream("/api/pool/drain/stream?count=abc")).status).toBe(400)
    }).pipe(Effect.provide(server([pool("openclaw", 2)])), Effect.provide(platform())), 60_000)
})

describe("POOL_CLAIM_KEYS", () => {
  it.live("a claim key claims and reads counts, and is refused everything else with a 403 saying why", () =>
    Effect.gen(function*() {
      yield* idleIs("openclaw", 2)
      expect((yield* call("GET", "/api/pool/scope")).json).toEqual({ scope: "operator" })
      expect((yield* call("GET", "/api/pool/scope", { key: CLAIM_KEY })).json).toEqual({ scope: "claim" })
      const claim = yield* call("POST", "/api/pool/claim", { key: CLAIM_KEY, body: { agentName: "a" } })
      expect(claim.status, claim.text).toBe(200)
      expect((yield* call("GET", "/api/pool/counts", { key: CLAIM_KEY })).status).toBe(200)
      for (const [method, path] of [
        ["GET", "/api/pool/status"],
        ["GET", "/api/pool/agents"],
        ["GET", "/api/pool/settings"],
        ["POST", "/api/pool/drain"],
        ["DELETE", `/api/pool/instances/${claim.json.instanceId}`],
        ["GET", "/api/pool/drain/stream"]
      ] as const) {
        const refused = yield* call(method, path, { key: CLAIM_KEY, ...(method === "POST" ? { body: { count: 1 } } : {}) })
        expect(refused.status, `${method} ${path}`).toBe(403)
        expect(refused.json).toEqual({ _tag: "Forbidden", message: expect.stringMatching(/may only claim and read counts/) })
      }
      expect((yield* call("GET", "/api/pool/status", { key: "wrong" })).status).toBe(401)
      expect((yield* instances).find((i) => i.id === claim.json.instanceId)?.status).toBe("claimed")
    }).pipe(Effect.provide(server([pool("openclaw", 2)])), Effect.provide(platform())), 60_000)
})

/**
 * Several pools end to end: the HTTP API on loopback, a Controller and a Postgres lease per pool, the rows in
 * Postgres, instances on the in-memory platform (which outlives a server restart, as a real platform does).
 */
import { SqlClient } from "@effect/sql"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { ComputeProvider, currentTemplate, LocalIncarnations, PoolSpec, Pools, SingleLeader } from "@warmpool/reconciler"
import { PgIncarnations, PgInstanceStore, PgLeadership } from "@warmpool/reconciler-pg"
import { freshDatabase } from "@warmpool/reconciler-pg/testing"
import { InMemoryCompute, InMemoryComputeControl, InMemoryCredentials, InMemoryHealth, InMemoryStore } from "@warmpool/reconciler/testing"
import { inMemoryConvosServices, InMemoryConvosRuntime } from "@warmpool/providers-convos/testing"
import { Duration, Effect, Fiber, Layer, Redacted, Ref, Schedule } from "effect"
import { createServer } from "node:http"
import { inject } from "vitest"
import { httpApiLayer } from "../src/index.js"
import { caller } from "./support/http.js"

const KEY = "pools-test-key-0123456789"
const call = caller(KEY)
const V1 = "ghcr.io/xmtplabs/convos-runtime:v1"
const V2 = "ghcr.io/xmtplabs/convos-runtime:v2"

const pool = (name: string, image: string, minIdle: number, env: Record<string, string> = {}) =>
  new PoolSpec({ name, namePrefix: `convos-${name}-`, minIdle, maxTotal: 10, listingGraceMs: 5_000, template: { image, env: { RUNTIME: name, ...env } } })

/** The server for `specs` over the database and platform in context; a restart is a new one on the same two. */
const server = (specs: ReadonlyArray<PoolSpec>) =>
  httpApiLayer({ environment: "dev", apiKey: Redacted.make(KEY) }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
    Layer.provideMerge(Pools.layerWith(specs, (spec) => PgLeadership.make({ name: spec.name }), { tickInterval: Duration.millis(100) })),
    Layer.provideMerge(Layer.mergeAll(PgInstanceStore.layer, PgIncarnations.layer, InMemoryHealth.layer(), InMemoryCredentials.layer, InMemoryConvosRuntime.layer()))
  )

const platform = () => Layer.mergeAll(InMemoryCompute.layer({ deployTime: Duration.millis(300) }), freshDatabase(inject("postgresUrl")))

/** Polls `check` until it holds (bounded). */
const eventually = <A, R>(what: string, check: Effect.Effect<A | undefined, never, R>) =>
  check.pipe(
    Effect.flatMap((value) => (value === undefined ? Effect.fail(what) : Effect.succeed(value))),
    Effect.retry(Schedule.spaced(Duration.millis(50)).pipe(Schedule.upTo(Duration.seconds(20)))),
    Effect.orDieWith((what) => new Error(`timed out waiting for ${what}`))
  )

const counts = (name?: string) => Effect.map(call("GET", `/api/pool/counts${name === undefined ? "" : `?pool=${name}`}`, { key: null }), (r) => r.json)

describe("several pools", () => {
  it.live("two pools fill independently; a claim with runtime lands in its pool; counts, status, plan and metrics show every pool", () =>
    Effect.gen(function*() {
      yield* Effect.scoped(Effect.gen(function*() {
        const both = yield* eventually("both pools full", Effect.map(counts(), (c) => (c.pools.openclaw.idle === 3 && c.pools.hermes.idle === 1 ? c : undefined)))
        // The seed's top-level counts are the sums.
        expect(both).toMatchObject({ idle: 4, claimed: 0, pools: { openclaw: { idle: 3 }, hermes: { idle: 1 } } })
        expect(yield* counts("hermes")).toMatchObject({ idle: 1, pools: { hermes: { idle: 1 } } })

        const claim = yield* call("POST", "/api/pool/claim", { body: { agentName: "a", instructions: "", runtime: "hermes" } })
        expect(claim.status, claim.text).toBe(200)
        const status = yield* call("GET", "/api/pool/status?pool=hermes")
        expect(status.json.instances.find((i: { id: string }) => i.id === claim.json.instanceId)).toMatchObject({ pool: "hermes", status: "claimed" })
        expect(status.json.instances.every((i: { pool: string }) => i.pool === "hermes")).toBe(true)
        expect(Object.keys(status.json.pools)).toEqual(["hermes"])
        const byPool = yield* call("POST", "/api/pool/claim", { body: { agentName: "b", instructions: "", pool: "openclaw" } })
        const plain = yield* call("POST", "/api/pool/claim", { body: { agentName: "c", instructions: "" } })
        const all = yield* call("GET", "/api/pool/status")
        const poolOf = (id: string) => all.json.instances.find((i: { id: string }) => i.id === id).pool
        expect([poolOf(byPool.json.instanceId), poolOf(plain.json.instanceId)]).toEqual(["openclaw", "openclaw"]) // openclaw is the default
        expect(all.json.pools.openclaw).toMatchObject({ default: true, minIdle: 3, image: V1 })
        expect(all.json.pools.hermes).toMatchObject({ default: false, minIdle: 1, counts: { claimed: 1 } })
        expect(all.json.counts.claimed).toBe(3)

        // An unknown pool is a 400 naming the known ones, wherever it is named; nothing changes.
        for (const answer of [
          yield* call("POST", "/api/pool/claim", { body: { agentName: "a", instructions: "", runtime: "nope" } }),
          yield* call("POST", "/api/pool/claim", { body: { agentName: "a", instructions: "", runtime: "hermes", pool: "openclaw" } }),
          yield* call("GET", "/api/pool/counts?pool=nope", { key: null }),
          yield* call("POST", "/api/pool/drain?pool=nope", { body: { count: 1 } }),
          yield* call("POST", "/api/pool/replenish", { body: { count: 1, pool: "nope" } }),
          yield* call("GET", "/api/pool/plan?pool=nope")
        ]) {
          expect(answer.status, answer.text).toBe(400)
          expect(answer.json.message).toMatch(/unknown pool "nope"; known pools: openclaw, hermes|different pools: hermes, openclaw/)
        }
        expect((yield* call("GET", "/api/pool/status")).json.counts.claimed).toBe(3)

        // Drain, replenish and plan act on the pool named.
        const drained = yield* call("POST", "/api/pool/drain", { body: { count: 5, pool: "hermes" } })
        const hermesIdle = (yield* call("GET", "/api/pool/status?pool=hermes")).json.instances.filter((i: { status: string }) => i.status === "deleting")
        expect(drained.json.drained).toEqual(hermesIdle.map((i: { id: string }) => i.id))
        const metrics = yield* call("GET", "/metrics", { key: null })
        expect(metrics.text).toMatch(/warmpool_instances\{pool="openclaw",status="idle"\} \d/)
        expect(metrics.text).toMatch(/warmpool_instances\{pool="hermes",status="claimed"\} 1/)
      }).pipe(Effect.provide(server([pool("openclaw", V1, 3), pool("hermes", V1, 1)]))))
    }).pipe(Effect.provide(platform())), 60_000)

  it.live("a new image and a restart roll idle instances surge-first, never below minIdle; a claimed one waits for upgrade", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const compute = yield* InMemoryComputeControl
      const before = [pool("openclaw", V1, 3), pool("hermes", V1, 1)]
      const after = [pool("openclaw", V2, 3, { MODEL: "v2" }), pool("hermes", V1, 1)]

      const { claimedId, hermesIds } = yield* Effect.scoped(Effect.gen(function*() {
        yield* eventually("both pools full", Effect.map(counts(), (c) => (c.pools.openclaw.idle === 3 && c.pools.hermes.idle === 1 ? c : undefined)))
        const claim = yield* call("POST", "/api/pool/claim", { body: { agentName: "a", instructions: "", runtime: "openclaw" } })
        yield* eventually("openclaw refilled", Effect.map(counts("openclaw"), (c) => (c.idle === 3 ? c : undefined)))
        const hermes = (yield* call("GET", "/api/pool/status?pool=hermes")).json.instances.map((i: { id: string }) => i.id)
        return { claimedId: claim.json.instanceId as string, hermesIds: hermes }
      }).pipe(Effect.provide(server(before))))

      // From here on, sample openclaw's idle count straight from the table: across the restart and the rollout.
      const samples = yield* Ref.make<ReadonlyArray<number>>([])
      const sampler = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM instances WHERE pool = 'openclaw' AND status = 'idle'`.pipe(
        Effect.flatMap(([row]) => Ref.update(samples, (all) => [...all, row!.n])),
        Effect.repeat(Schedule.spaced(Duration.millis(20))),
        Effect.fork
      )

      yield* Effect.scoped(Effect.gen(function*() {
        const newHash = currentTemplate(after[0]!).hash
        const rolled = yield* eventually("every unclaimed openclaw instance on the new template", Effect.gen(function*() {
          const status = yield* call("GET", "/api/pool/status?pool=openclaw")
          const unclaimed = status.json.instances.filter((i: { status: string }) => i.status !== "claimed")
          return unclaimed.length === 3 && unclaimed.every((i: { status: string; templateHash: string }) => i.status === "idle" && i.templateHash === newHash)
            ? status.json
            : undefined
        }))
        yield* Fiber.interrupt(sampler)
        const seen = yield* Ref.get(samples)
        expect(seen.length).toBeGreaterThan(5)
        expect(Math.min(...seen)).toBeGreaterThanOrEqual(3)
        const serviceOf = (id: string) => Effect.map(compute.services, (all) => all.find((s) => s.info.name.endsWith(id))!)
        const imageOf = (id: string) => Effect.runSync(Effect.map(serviceOf(id), (s) => s.info.image))
        for (const i of rolled.instances.filter((i: { status: string }) => i.status === "idle")) expect(imageOf(i.id)).toBe(V2)

        // The claimed instance is left alone by the rollout, and moved by upgrade only.
        const claimed = rolled.instances.find((i: { id: string }) => i.id === claimedId)
        expect(claimed).toMatchObject({ status: "claimed", runtimeImage: V1 })
        expect(imageOf(claimedId)).toBe(V1)
        const envBefore = (yield* serviceOf(claimedId)).env
        expect(envBefore.MODEL).toBeUndefined()
        const outdatedGauge = (n: number) =>
          Effect.map(call("GET", "/metrics", { key: null }), (m) => (m.text.includes(`warmpool_instances_outdated{pool="openclaw"} ${n}\n`) ? true : undefined))
        yield* eventually("the claimed instance counted as outdated", outdatedGauge(1))
        const idleOne = rolled.instances.find((i: { status: string }) => i.status === "idle")
        expect((yield* call("POST", `/api/pool/instances/${idleOne.id}/upgrade`)).status).toBe(409)
        expect((yield* call("POST", "/api/pool/instances/nope/upgrade")).status).toBe(404)
        const upgraded = yield* call("POST", `/api/pool/instances/${claimedId}/upgrade`)
        expect(upgraded.status, upgraded.text).toBe(200)
        expect(upgraded.json).toMatchObject({ id: claimedId, status: "claimed", runtimeImage: V2, templateHash: newHash })
        expect(imageOf(claimedId)).toBe(V2)
        // The new template's variables are set; the instance's own secrets stay.
        expect((yield* serviceOf(claimedId)).env).toEqual({ ...envBefore, MODEL: "v2" })
        expect((yield* call("POST", `/api/pool/instances/${claimedId}/upgrade`)).json.templateHash).toBe(newHash) // again: a no-op
        yield* eventually("nothing outdated once upgraded", outdatedGauge(0))

        // The other pool's template did not change: its instances are the same ones.
        const hermes = (yield* call("GET", "/api/pool/status?pool=hermes")).json.instances.map((i: { id: string }) => i.id)
        expect(hermes).toEqual(hermesIds)
      }).pipe(Effect.provide(server(after))))
    }).pipe(Effect.provide(platform())), 60_000)

  it.live("GET /api/pool/plan shows a rollout's actions with their reasons, pool by pool", () =>
    Effect.gen(function*() {
      const v1 = [pool("openclaw", V1, 2), pool("hermes", V1, 1)]
      const v2 = [pool("openclaw", V2, 2), pool("hermes", V1, 1)]
      const passes = (n: number) => Effect.flatMap(Pools, (p) => Effect.forEach(p.all, (c) => Effect.repeatN(c.runPass, n - 1)))
      yield* passes(2).pipe(Effect.provide(Pools.layer(v1, { background: false })))
      yield* Effect.gen(function*() {
        const first = yield* call("GET", "/api/pool/plan")
        expect(first.json.actions).toEqual([{ pool: "openclaw", kind: "Create", detail: "rollout" }])
        yield* passes(2) // the surge instance is made and turns idle
        const second = yield* call("GET", "/api/pool/plan?pool=openclaw")
        expect(second.json.actions).toEqual([
          { pool: "openclaw", kind: "Delete", id: expect.any(String), detail: "rollout, from idle" },
          { pool: "openclaw", kind: "Create", detail: "rollout" }
        ])
      }).pipe(Effect.provide(
        httpApiLayer({ environment: "dev", apiKey: Redacted.make(KEY) }).pipe(
          Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
          Layer.provideMerge(Pools.layer(v2, { background: false }))
        )
      ))
    }).pipe(Effect.provide(inMemoryConvosServices())))

  it.live("a platform that cannot redeploy answers upgrade with 501, and changes nothing", () =>
    Effect.gen(function*() {
      const pools = yield* Pools
      yield* Effect.repeatN(pools.all[0]!.runPass, 1)
      const claim = yield* call("POST", "/api/pool/claim", { body: { agentName: "a", instructions: "" } })
      const before = (yield* call("GET", "/api/pool/status")).json.instances.find((i: { id: string }) => i.id === claim.json.instanceId)
      const answer = yield* call("POST", `/api/pool/instances/${claim.json.instanceId}/upgrade`)
      expect(answer.status).toBe(501)
      expect(answer.json.message).toBe("this compute provider cannot redeploy services")
      const after = (yield* call("GET", "/api/pool/status")).json.instances.find((i: { id: string }) => i.id === claim.json.instanceId)
      expect(after).toEqual(before)
    }).pipe(Effect.provide(
      httpApiLayer({ environment: "dev", apiKey: Redacted.make(KEY) }).pipe(
        Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
        Layer.provideMerge(Pools.layer([pool("openclaw", V2, 1)], { background: false })),
        // A compute provider and nothing more: no ServiceUpgrader in context.
        Layer.provideMerge(Layer.effect(ComputeProvider, ComputeProvider).pipe(Layer.provide(InMemoryCompute.layer()))),
        Layer.provideMerge(Layer.mergeAll(InMemoryStore.layer, InMemoryHealth.layer(), InMemoryCredentials.layer, InMemoryConvosRuntime.layer(), SingleLeader, LocalIncarnations.layer()))
      )
    )))
})

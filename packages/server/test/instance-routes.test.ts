/**
 * What an instance asks for itself, over real loopback HTTP with the replaced runtime's exact bodies:
 * `{instanceId, gatewayToken}` (400 / 403 `{error}` otherwise), self-destruct in both forms, self-info,
 * self-upgrade onto a digest from a registry emulator whose tag moves, self-reset, credits against the
 * OpenRouter emulator (twenty top-ups at once add exactly what they may), and the pending-acceptance callbacks.
 */
import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { AWAITS_ACCEPTANCE_MARKER } from "@warmpool/providers-convos"
import { OPENROUTER_KEY_HANDLE, OpenRouterKeysLive } from "@warmpool/providers-openrouter"
import { startOpenRouterEmulator } from "@warmpool/providers-openrouter/emulator"
import { Controller, type Instance, InstanceStore, PoolSpec } from "@warmpool/reconciler"
import { InMemoryComputeControl, InMemoryHealthControl, InMemoryStoreControl } from "@warmpool/reconciler/testing"
import { Effect, Layer, Logger, LogLevel, Option, Redacted, Schedule } from "effect"
import { ImageDigestsLive } from "../src/registry/image-digests.js"
import { call, KEY, world } from "./support/http-world.js"
import { startRegistryEmulator } from "./support/registry-emulator.js"

const MANAGEMENT_KEY = "management-key-for-tests"
const IMAGE = "ghcr.io/acme/agent:stable"
const spec = new PoolSpec({ name: "pool", namePrefix: "convos-agent-", minIdle: 3, maxTotal: 6, template: { image: IMAGE, env: { MODEL: "m1" } } })

const lines: Array<string> = []
const capture = Layer.merge(
  Logger.replace(Logger.defaultLogger, Logger.map(Logger.logfmtLogger, (line) => void lines.push(line))),
  Logger.minimumLogLevel(LogLevel.All)
)

/** The registry and OpenRouter emulators, and the API over in-memory services that uses them. */
const setup = Effect.gen(function*() {
  const registry = yield* startRegistryEmulator
  const openrouter = yield* startOpenRouterEmulator({ managementKey: MANAGEMENT_KEY })
  const services = Layer.mergeAll(
    ImageDigestsLive.layer({ registryUrl: Option.some(registry.url) }),
    OpenRouterKeysLive.layer({ apiUrl: openrouter.apiUrl, managementKey: Redacted.make(MANAGEMENT_KEY) })
  ).pipe(Layer.provide(FetchHttpClient.layer))
  return { registry, openrouter, layer: world("dev", spec).pipe(Layer.provide(services), Layer.provide(capture)) }
})

/** `body` in the API over the emulators (started for it, closed after). */
const inWorld = <A, E, R>(body: (emulators: Effect.Effect.Success<typeof setup>) => Effect.Effect<A, E, R>) =>
  Effect.scoped(Effect.flatMap(setup, (emulators) => Effect.provide(body(emulators), emulators.layer)))

const rows = Effect.flatMap(InMemoryStoreControl, (c) => c.rows)
const rowOf = (id: string) => Effect.map(rows, (all) => all.find((r) => r.id === id))

/** A full pool whose instances each have a gateway token (as the Convos secrets issue them) and their own OpenRouter key. */
const warmPool = (seedKey: (name: string) => { body?: unknown }) =>
  Effect.gen(function*() {
    const controller = yield* Controller
    const store = yield* InstanceStore
    yield* Effect.repeatN(controller.runPass, 1)
    const idle = yield* rows
    const tokens = new Map<string, string>()
    for (const [i, row] of idle.entries()) {
      const gatewayToken = `${i}`.repeat(64).slice(0, 64)
      const created = seedKey(row.name).body as { data: { hash: string } }
      tokens.set(row.id, gatewayToken)
      yield* store.transition({ id: row.id, from: ["idle"], to: "idle", patch: { handles: { gatewayToken, [OPENROUTER_KEY_HANDLE]: created.data.hash } } })
    }
    return { rows: idle as ReadonlyArray<Instance>, tokens }
  })

const asInstance = (path: string, body: unknown) => call("POST", path, { key: null, body: body as object })

const routes = [
  "/api/pool/self-destruct",
  "/api/pool/self-info",
  "/api/pool/self-upgrade",
  "/api/pool/self-reset",
  "/api/pool/credits-check",
  "/api/pool/credits-topup",
  "/api/pool/pending-acceptance/fail"
]

describe("an instance's own routes, with {instanceId, gatewayToken} in the body", () => {
  it.live("400 when either is missing, 403 when they match no instance; nothing changes; no token in the logs", () =>
    inWorld(({ openrouter }) =>
      Effect.gen(function*() {
        const { rows: idle, tokens } = yield* warmPool(openrouter.seedKey)
        const [a, b] = idle
        const before = yield* rows
        for (const path of routes) {
          for (const body of [{}, { instanceId: a!.id }, { gatewayToken: tokens.get(a!.id) }, { instanceId: "", gatewayToken: "x" }, { instanceId: 5, gatewayToken: "x" }]) {
            const answer = yield* asInstance(path, body)
            expect([path, answer.status, answer.json]).toEqual([path, 400, { error: "instanceId and gatewayToken are required" }])
          }
          for (const body of [
            { instanceId: a!.id, gatewayToken: tokens.get(b!.id) }, // another instance's token
            { instanceId: "nobody", gatewayToken: tokens.get(a!.id) },
            { instanceId: a!.id, gatewayToken: tokens.get(a!.id)!.slice(1) },
            { instanceId: a!.id, gatewayToken: KEY } // the pool's key is no instance's token
          ]) {
            const answer = yield* asInstance(path, body)
            expect([path, answer.status, answer.json]).toEqual([path, 403, { error: "Invalid instance ID or token" }])
          }
        }
        const complete = yield* asInstance("/api/pool/pending-acceptance/complete", { instanceId: a!.id, gatewayToken: tokens.get(a!.id) })
        expect(complete).toMatchObject({ status: 400, json: { error: "instanceId, gatewayToken, and conversationId are required" } })
        expect(yield* rows).toEqual(before)
        for (const secret of [KEY, ...tokens.values()]) expect(lines.filter((line) => line.includes(secret))).toEqual([])
        // The API's description lists every route, with the replaced system's 400 and 403.
        const described = (yield* call("GET", "/openapi.json", { key: null })).json.paths
        for (const path of [...routes, "/api/pool/pending-acceptance/complete"]) expect(Object.keys(described[path].post.responses)).toEqual(expect.arrayContaining(["400", "403"]))
      })))

  it.live("self-destruct: {ok: true} in the body form, the earlier Bearer form unchanged; the row goes to deleting", () =>
    inWorld(({ openrouter }) =>
      Effect.gen(function*() {
        const { rows: idle, tokens } = yield* warmPool(openrouter.seedKey)
        const [a, b] = idle
        // No credentials at all: the Bearer form's 401; a body without them: the body form's 400.
        expect((yield* call("POST", "/api/pool/self-destruct", { key: null })).status).toBe(401)
        expect((yield* call("POST", "/api/pool/self-destruct", { key: "wrong" })).status).toBe(401)

        const asked = yield* asInstance("/api/pool/self-destruct", { instanceId: a!.id, gatewayToken: tokens.get(a!.id) })
        expect(asked).toMatchObject({ status: 200, json: { ok: true } })
        expect(Object.keys(asked.json)).toEqual(["ok"])
        // Answered first, removed after: the row reaches `deleting` right behind the answer.
        const deleting = yield* rowOf(a!.id).pipe(
          Effect.filterOrFail((row) => row?.status === "deleting"),
          Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo("2 seconds"))),
          Effect.isSuccess
        )
        expect(deleting).toBe(true)

        const bearer = yield* call("POST", "/api/pool/self-destruct", { key: tokens.get(b!.id)! })
        expect(bearer).toMatchObject({ status: 200, json: { instanceId: b!.id, status: "deleting" } })
        expect((yield* rowOf(b!.id))?.status).toBe("deleting")
      })))

  it.live("self-info, self-upgrade onto the moved tag's digest (and the tag when the registry cannot say), self-reset", () =>
    inWorld(({ openrouter, registry }) =>
      Effect.gen(function*() {
        // The runtimes report their version with their health (`{ ready, version }`); a row keeps it.
        yield* Effect.flatMap(InMemoryHealthControl, (health) => health.setDefault({ health: "ready", runtimeVersion: "1.4.0" }))
        const { rows: idle, tokens } = yield* warmPool(openrouter.seedKey)
        const a = idle[0]!
        const credentials = { instanceId: a.id, gatewayToken: tokens.get(a.id) }
        const info = yield* asInstance("/api/pool/self-info", credentials)
        expect(info).toMatchObject({ status: 200 })
        expect(info.json).toEqual({ ok: true, instanceId: a.id, runtimeVersion: "1.4.0", runtimeImage: IMAGE, latestImage: IMAGE })

        const serviceOf = Effect.map(Effect.flatMap(InMemoryComputeControl, (c) => c.services), (all) => all.find((s) => s.info.serviceId === a.serviceId)!)
        const first = registry.push("acme/agent", "stable")
        const upgraded = yield* asInstance("/api/pool/self-upgrade", credentials)
        expect(upgraded).toMatchObject({ status: 200, json: { ok: true, instanceId: a.id, image: IMAGE, deployedImage: `ghcr.io/acme/agent@${first}`, digest: first, unresolved: null } })
        expect((yield* serviceOf).info.image).toBe(`ghcr.io/acme/agent@${first}`)
        // The tag moves: the same request now deploys the new image (with a tag only, it would be a no-op).
        const second = registry.push("acme/agent", "stable")
        expect(second).not.toBe(first)
        const again = yield* asInstance("/api/pool/self-upgrade", credentials)
        expect(again.json).toMatchObject({ deployedImage: `ghcr.io/acme/agent@${second}`, digest: second })
        const service = yield* serviceOf
        expect(service.info.image).toBe(`ghcr.io/acme/agent@${second}`)
        // Its own variables stay; the template's are set over them.
        expect(service.env.MODEL).toBe("m1")
        // The registry asked as a client asks: challenged, then with an anonymous pull token.
        const asked = registry.calls().filter((c) => c.path === "/v2/acme/agent/manifests/stable")
        expect(asked.some((c) => c.authorization === undefined) && asked.some((c) => c.authorization?.startsWith("Bearer ") === true)).toBe(true)

        // The registry fails: the tag is deployed, and the answer says why.
        registry.inject({ _tag: "Status", status: 503 }, { times: 10, path: /manifests/ })
        const fallback = yield* asInstance("/api/pool/self-upgrade", credentials)
        expect(fallback).toMatchObject({ status: 200, json: { deployedImage: IMAGE, digest: null, unresolved: "the manifest HEAD answered 503" } })
        expect(lines.some((line) => line.includes(`image ${IMAGE}: no digest from its registry`))).toBe(true)

        const deployments = (yield* serviceOf).deployments
        const reset = yield* asInstance("/api/pool/self-reset", credentials)
        expect(reset).toMatchObject({ status: 200, json: { ok: true, instanceId: a.id } })
        expect(Object.keys(reset.json).sort()).toEqual(["instanceId", "ok"])
        const after = yield* serviceOf
        expect([after.deployments, after.info.image]).toEqual([deployments + 1, IMAGE])
      })))

  it.live("credits-check reads the key from OpenRouter; twenty top-ups at once raise it by exactly min(20 × 20, 100 − limit); 409 at the maximum", () =>
    inWorld(({ openrouter }) =>
      Effect.gen(function*() {
        const { rows: idle, tokens } = yield* warmPool(openrouter.seedKey)
        const a = idle[0]!
        const hash = (yield* rowOf(a.id))!.handles[OPENROUTER_KEY_HANDLE]!
        const credentials = { instanceId: a.id, gatewayToken: tokens.get(a.id) }
        // seedKey made it without a limit: give it the usual starting one, and some spend.
        yield* Effect.promise(() => fetch(`${openrouter.apiUrl}/keys/${hash}`, { method: "PATCH", headers: { authorization: `Bearer ${MANAGEMENT_KEY}`, "content-type": "application/json" }, body: JSON.stringify({ limit: 20 }) }))
        openrouter.setUsage(hash, 7.5)
        const check = yield* asInstance("/api/pool/credits-check", credentials)
        expect(check).toMatchObject({ status: 200 })
        expect(check.json).toEqual({ limit: 20, usage: 7.5, remaining: 12.5, limitReset: null })

        const answers = yield* Effect.forEach(Array.from({ length: 20 }), () => asInstance("/api/pool/credits-topup", credentials), { concurrency: "unbounded" })
        const ok = answers.filter((a) => a.status === 200)
        const refused = answers.filter((a) => a.status === 409)
        expect([ok.length, refused.length]).toEqual([4, 16])
        expect(ok.map((a) => [a.json.previousLimit, a.json.newLimit]).sort((x, y) => x[0] - y[0])).toEqual([[20, 40], [40, 60], [60, 80], [80, 100]])
        for (const answer of ok) expect(Object.keys(answer.json).sort()).toEqual(["newLimit", "ok", "previousLimit"])
        for (const answer of refused) expect(answer.json).toEqual({ error: "Credit limit already at maximum", limit: 100, max: 100 })
        const key = openrouter.keys().find((k) => k.hash === hash)!
        expect([key.limit, key.limitChanges]).toEqual([100, 5])

        // An instance without a key of its own: 404, as there.
        const store = yield* InstanceStore
        const b = idle[1]!
        yield* store.transition({ id: b.id, from: ["idle"], to: "idle", patch: { handles: { [OPENROUTER_KEY_HANDLE]: "" } } })
        for (const path of ["/api/pool/credits-check", "/api/pool/credits-topup"]) {
          const noKey = yield* asInstance(path, { instanceId: b.id, gatewayToken: tokens.get(b.id) })
          expect(noKey).toMatchObject({ status: 404, json: { error: "No credits service provisioned for this instance" } })
        }
        // OpenRouter failing: 502, and the limit is not touched.
        openrouter.inject({ _tag: "Status", status: 500 }, { times: 10 })
        const down = yield* asInstance("/api/pool/credits-topup", credentials)
        expect([down.status, typeof down.json.error]).toEqual([502, "string"])
      })))

  it.live("a join that awaits acceptance: pending_acceptance in the answer and the counts, then complete → claimed, fail → tainted", () =>
    inWorld(({ openrouter }) =>
      Effect.gen(function*() {
        const { tokens } = yield* warmPool(openrouter.seedKey)
        const joinUrl = (n: number) => `https://dev.convos.org/v2?i=${AWAITS_ACCEPTANCE_MARKER}-${n}`
        const first = yield* call("POST", "/api/pool/claim", { body: { joinUrl: joinUrl(1), agentName: "Ada" } })
        expect(first).toMatchObject({ status: 200, json: { status: "pending_acceptance", conversationId: null, joined: false, inviteUrl: joinUrl(1), agentName: "Ada" } })
        const second = yield* call("POST", "/api/pool/claim", { body: { joinUrl: joinUrl(2) } })
        expect(second.json).toMatchObject({ status: "pending_acceptance", agentName: "Assistant" })
        const counts = yield* call("GET", "/api/pool/counts")
        expect(counts.json).toMatchObject({ pending_acceptance: 2, tainted: 0, claimed: 0 })
        // Counted as claimed: the pool refills beside them, and a pass leaves them alone.
        yield* Effect.flatMap(Controller, (c) => c.runPass)
        expect((yield* rowOf(first.json.instanceId))?.status).toBe("pending_acceptance")

        const a = first.json.instanceId as string
        const b = second.json.instanceId as string
        const done = yield* asInstance("/api/pool/pending-acceptance/complete", { instanceId: a, gatewayToken: tokens.get(a), conversationId: "conv-accepted" })
        expect(done).toMatchObject({ status: 200, json: { ok: true, instanceId: a, conversationId: "conv-accepted" } })
        expect(yield* rowOf(a)).toMatchObject({ status: "claimed", attributes: expect.objectContaining({ conversationId: "conv-accepted" }) })
        // Not pending any more: ok false, nothing changes.
        const twice = yield* asInstance("/api/pool/pending-acceptance/fail", { instanceId: a, gatewayToken: tokens.get(a) })
        expect(twice.json).toEqual({ ok: false, instanceId: a })
        expect((yield* rowOf(a))?.status).toBe("claimed")

        const failed = yield* asInstance("/api/pool/pending-acceptance/fail", { instanceId: b, gatewayToken: tokens.get(b) })
        expect(failed.json).toEqual({ ok: true, instanceId: b })
        expect((yield* rowOf(b))?.status).toBe("tainted")
        expect((yield* call("GET", "/api/pool/counts")).json).toMatchObject({ pending_acceptance: 0, tainted: 1, claimed: 1 })
        // Cleaned up like a crashed one: dismissed, then gone with its service.
        expect((yield* call("DELETE", `/api/pool/crashed/${b}`)).json).toMatchObject({ id: b, status: "deleting" })
        yield* Effect.flatMap(Controller, (c) => c.runPass)
        expect(yield* rowOf(b)).toBeUndefined()
      })))
})

/**
 * Claims over real loopback HTTP: waiting (`waitMs`) until an instance is ready or the deadline, a waiting
 * client that disconnects, the Server-Sent Events stream read by a real SSE client, and bad bodies told in words.
 */
import { describe, expect, it } from "@effect/vitest"
import { Controller, PoolSpec } from "@warmpool/reconciler"
import { InMemoryStoreControl } from "@warmpool/reconciler/testing"
import { Duration, Effect, Schedule } from "effect"
import { base, call, KEY, world } from "./support/http-world.js"
import { openClaimStream } from "./support/sse-client.js"

/** minIdle 0: nothing is idle unless a claim asks for it. */
const empty = new PoolSpec({ name: "pool", namePrefix: "convos-agent-", minIdle: 0, maxTotal: 3, template: { image: "img", env: {} } })

const rows = Effect.flatMap(InMemoryStoreControl, (c) => c.rows)
const plannedCreates = Effect.flatMap(Controller, (c) => c.preview).pipe(Effect.map((actions) => actions.filter((a) => a._tag === "Create").length))
const passes = (n: number) => Effect.flatMap(Controller, (c) => Effect.repeatN(c.runPass, n - 1))

/** Checks `condition` until it holds, for at most 10 s. */
const eventually = <E, R>(condition: Effect.Effect<boolean, E, R>) =>
  Effect.repeat(condition, { until: (ok) => ok, schedule: Schedule.spaced(Duration.millis(20)) }).pipe(
    Effect.timeoutFail({ duration: Duration.seconds(10), onTimeout: () => new Error("condition still false after 10 s") })
  )

/** A `POST /api/pool/claim` in flight, abortable like a client that goes away. */
const claimInFlight = (body: object) =>
  Effect.map(base, (url) => {
    const abort = new AbortController()
    const answer = fetch(`${url}/api/pool/claim`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: abort.signal
    }).then(async (response) => ({ status: response.status, json: await response.json() }))
    // An aborted request rejects; the test that aborts does not read it.
    answer.catch(() => undefined)
    return { answer, abort: () => abort.abort() }
  })

describe("Claims that wait, over HTTP", () => {
  it.live("with waitMs, a claim that finds nothing idle is answered as soon as an instance is ready", () =>
    Effect.gen(function*() {
      const claim = yield* claimInFlight({ agentName: "patient", waitMs: 20_000 })
      // The claim asked for an instance (minIdle is 0), and /metrics counts it.
      yield* eventually(Effect.map(plannedCreates, (n) => n === 1))
      expect((yield* call("GET", "/metrics", { key: null })).text).toContain('warmpool_claims_waiting{pool="pool"} 1')
      yield* passes(2)
      const answer = yield* Effect.promise(() => claim.answer)
      expect(answer.status).toBe(200)
      expect(Object.keys(answer.json).sort()).toEqual(["agentName", "conversationId", "gatewayToken", "gatewayUrl", "instanceId", "inviteUrl", "joined", "status"])
      expect((yield* rows).map((r) => [r.id, r.status, r.attributes.agentName ?? null])).toEqual([[answer.json.instanceId, "claimed", "patient"]])
      expect((yield* call("GET", "/metrics", { key: null })).text).toContain('warmpool_claims_waiting{pool="pool"} 0')
    }).pipe(Effect.provide(world("dev", empty))))

  it.live("at the deadline: 503 with Retry-After, and the request for an instance is withdrawn", () =>
    Effect.gen(function*() {
      const started = Date.now()
      const answer = yield* call("POST", "/api/pool/claim", { body: { waitMs: 400 } })
      expect(Date.now() - started).toBeGreaterThanOrEqual(380)
      expect(answer.status).toBe(503)
      expect(answer.headers.get("retry-after")).toBe("5")
      expect(answer.json.message).toContain("in the time the claim could wait")
      expect(yield* plannedCreates).toBe(0)
    }).pipe(Effect.provide(world("dev", empty))))

  it.live("a waiting client that disconnects takes nothing with it", () =>
    Effect.gen(function*() {
      const gone = yield* claimInFlight({ agentName: "gone", waitMs: 60_000 })
      yield* eventually(Effect.map(plannedCreates, (n) => n === 1))
      gone.abort()
      // Its place and its request for an instance go with it.
      yield* eventually(Effect.map(plannedCreates, (n) => n === 0))
      const stays = yield* claimInFlight({ agentName: "stays", waitMs: 20_000 })
      yield* eventually(Effect.map(plannedCreates, (n) => n === 1))
      yield* passes(2)
      const answer = yield* Effect.promise(() => stays.answer)
      expect(answer.status).toBe(200)
      // One instance, claimed by the client who stayed; nothing left half-claimed.
      expect((yield* rows).map((r) => [r.status, r.attributes.agentName ?? null])).toEqual([["claimed", "stays"]])
    }).pipe(Effect.provide(world("dev", empty))))

  it.live("agentName and instructions are optional; a bad body is told in words and changes nothing", () =>
    Effect.gen(function*() {
      yield* passes(2)
      const before = yield* rows
      const cases = [
        [{ instructions: 7 }, "instructions must be a string of at most 20,000 characters"],
        [{ instructions: "x".repeat(20_001) }, "instructions must be a string of at most 20,000 characters"],
        [{ agentName: "" }, "agentName must be a string of 1 to 200 characters"],
        [{ waitMs: 120_001 }, "waitMs must be a whole number of milliseconds from 0 to 120,000"],
        [{ waitMs: "soon" }, "waitMs must be a whole number of milliseconds"],
        [{ agentName: 3 }, "agentName must be a string of 1 to 200 characters"],
        [{ joinUrl: "ftp://x" }, "joinUrl must be an http(s) URL"],
        [[1, 2], "the body must be a JSON object"]
      ] as const
      for (const [body, says] of cases) {
        const answer = yield* call("POST", "/api/pool/claim", { body })
        expect(answer.status, answer.text).toBe(400)
        expect(answer.json.message, answer.text).toContain(says)
        // Words, not the schema.
        expect(answer.json.message).not.toMatch(/readonly|Expected|└─/)
      }
      expect(yield* rows).toEqual(before)
      const bare = yield* call("POST", "/api/pool/claim", { body: {} })
      expect(bare.status).toBe(200)
      const nulls = yield* call("POST", "/api/pool/claim", { body: { agentName: null, instructions: null, joinUrl: null, waitMs: null } })
      expect(nulls.status).toBe(200)
    }).pipe(Effect.provide(world("dev", new PoolSpec({ ...empty, minIdle: 2 })))))
})

describe("POST /api/pool/claim/stream, read by a real SSE client", () => {
  it.live("queued (with its place), claimed, provisioning, then done with the body /claim answers", () =>
    Effect.gen(function*() {
      const first = yield* openClaimStream({ agentName: "first", waitMs: 20_000 })
      yield* eventually(Effect.sync(() => first.events().length === 1))
      const second = yield* openClaimStream({ agentName: "second", waitMs: 20_000 })
      yield* eventually(Effect.sync(() => second.events().length === 1))
      expect(first.events()).toEqual([{ event: "queued", data: { position: 1 } }])
      expect(second.events()).toEqual([{ event: "queued", data: { position: 2 } }])
      yield* passes(2)
      for (const [stream, name] of [[first, "first"], [second, "second"]] as const) {
        const events = yield* Effect.promise(() => stream.finished)
        const done = events.at(-1)!
        expect(events.map((e) => e.event)).toEqual(["queued", "claimed", "provisioning", "done"])
        expect(Object.keys(done.data).sort()).toEqual(["agentName", "conversationId", "gatewayToken", "gatewayUrl", "instanceId", "inviteUrl", "joined", "status"])
        expect(events[1]!.data).toEqual({ instanceId: done.data.instanceId })
        expect(events[2]!.data).toEqual({ instanceId: done.data.instanceId })
        const row = (yield* rows).find((r) => r.id === done.data.instanceId)!
        expect([row.status, row.attributes.agentName]).toEqual(["claimed", name])
      }
    }).pipe(Effect.provide(world("dev", empty))))

  it.live("an instance idle at once: claimed, provisioning, done (never queued)", () =>
    Effect.gen(function*() {
      yield* passes(2)
      const events = yield* Effect.flatMap(openClaimStream({}), (s) => Effect.promise(() => s.finished))
      expect(events.map((e) => e.event)).toEqual(["claimed", "provisioning", "done"])
    }).pipe(Effect.provide(world("dev", new PoolSpec({ ...empty, minIdle: 1 })))))

  it.live("error carries the status and body /claim would have answered", () =>
    Effect.gen(function*() {
      const events = yield* Effect.flatMap(openClaimStream({ agentName: "a" }), (s) => Effect.promise(() => s.finished))
      const plain = yield* call("POST", "/api/pool/claim", { body: { agentName: "a" } })
      expect(plain.status).toBe(503)
      expect(events).toEqual([{ event: "error", data: { status: 503, ...plain.json, retryAfter: 5 } }])
      const late = yield* Effect.flatMap(openClaimStream({ waitMs: 300 }), (s) => Effect.promise(() => s.finished))
      expect(late.map((e) => [e.event, e.data.status ?? null])).toEqual([["queued", null], ["error", 503]])
    }).pipe(Effect.provide(world("dev", empty))))

  it.live("a bad body or a wrong key is refused before any event, as /claim refuses it", () =>
    Effect.gen(function*() {
      const bad = yield* call("POST", "/api/pool/claim/stream", { body: { instructions: 7 } })
      expect(bad.status).toBe(400)
      expect(bad.json.message).toBe("instructions must be a string of at most 20,000 characters")
      expect((yield* call("POST", "/api/pool/claim/stream", { body: {}, key: "wrong-key-0123456789" })).status).toBe(401)
      expect((yield* call("POST", "/api/pool/claim/stream", { body: {}, key: null })).status).toBe(401)
    }).pipe(Effect.provide(world("dev", empty))))

  it.live("a stream client that goes away while queued takes nothing with it", () =>
    Effect.gen(function*() {
      const stream = yield* openClaimStream({ agentName: "gone", waitMs: 60_000 })
      yield* eventually(Effect.sync(() => stream.events().length === 1))
      expect(yield* plannedCreates).toBe(1)
      stream.close()
      yield* eventually(Effect.map(plannedCreates, (n) => n === 0))
      expect(yield* rows).toEqual([])
    }).pipe(Effect.provide(world("dev", empty))))
})

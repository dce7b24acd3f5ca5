/**
 * Claims as the replaced system's clients send them, over real loopback HTTP: its later body fields (stored and
 * shown), its defaults, one instance per conversation (409 with that instance's id, also for claims that race),
 * Idempotency-Key (a retry, or duplicates in flight, get the first answer), and `GET /api/pool/claim/stream` read
 * by a real EventSource with its unnamed step events.
 */
import { describe, expect, it } from "@effect/vitest"
import { AWAITS_ACCEPTANCE_MARKER } from "@warmpool/providers-convos"
import { Controller, PoolSpec } from "@warmpool/reconciler"
import { InMemoryStoreControl } from "@warmpool/reconciler/testing"
import { Effect } from "effect"
import { EventSource } from "eventsource"
import { base, call, KEY, world } from "./support/http-world.js"

const spec = new PoolSpec({ name: "pool", namePrefix: "convos-agent-", minIdle: 4, maxTotal: 8, template: { image: "img", env: {} } })
const rows = Effect.flatMap(InMemoryStoreControl, (c) => c.rows)
const fill = Effect.flatMap(Controller, (c) => Effect.repeatN(c.runPass, 1))
const claimWith = (body: object, headers: Record<string, string> = {}) =>
  Effect.flatMap(base, (url) =>
    Effect.promise(async () => {
      const response = await fetch(`${url}/api/pool/claim`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json", ...headers },
        body: JSON.stringify(body)
      })
      return { status: response.status, json: await response.json() }
    }))

/** `GET /api/pool/claim/stream?…` with a real EventSource; every unnamed event until `complete`. */
const streamClaim = (query: Record<string, string>) =>
  Effect.flatMap(base, (url) =>
    Effect.promise(() =>
      new Promise<Array<any>>((resolve, reject) => {
        const received: Array<any> = []
        const source = new EventSource(`${url}/api/pool/claim/stream?${new URLSearchParams(query)}`, {
          fetch: (input, init) => fetch(input, { ...init, headers: { ...init.headers, authorization: `Bearer ${KEY}` } })
        })
        source.onmessage = (event) => {
          const data = JSON.parse(event.data)
          received.push(data)
          if (data.type === "complete") {
            source.close()
            resolve(received)
          }
        }
        source.onerror = (event) => {
          source.close()
          reject(new Error(`stream failed: ${"message" in event ? String(event.message) : ""}`))
        }
      })
    ))

describe("claims as the replaced system's clients send them", () => {
  it.live("profileImage, metadata and source are kept on the instance and shown; agentName and instructions default as there", () =>
    Effect.gen(function*() {
      yield* fill
      const full = yield* call("POST", "/api/pool/claim", {
        body: { agentName: "Ada", profileImage: "https://img.test/ada.png", metadata: { team: "blue", plan: "pro" }, source: "web" }
      })
      expect(full).toMatchObject({ status: 200, json: { status: "claimed", agentName: "Ada" } })
      const bare = yield* call("POST", "/api/pool/claim", { body: {} })
      expect(bare.json).toMatchObject({ status: "claimed", agentName: "Assistant" })
      const all = yield* rows
      expect(all.find((r) => r.id === full.json.instanceId)!.attributes).toMatchObject({
        agentName: "Ada", profileImage: "https://img.test/ada.png", metadata: JSON.stringify({ team: "blue", plan: "pro" }), source: "web"
      })
      expect(all.find((r) => r.id === bare.json.instanceId)!.attributes).toMatchObject({
        agentName: "Assistant", instructions: "You are a helpful AI assistant.", source: "api"
      })
      const status = yield* call("GET", "/api/pool/status")
      const shown = status.json.instances.find((i: any) => i.id === full.json.instanceId)
      expect(shown).toMatchObject({ profileImage: "https://img.test/ada.png", metadata: { team: "blue", plan: "pro" }, source: "web" })

      const before = yield* rows
      for (const [body, words] of [
        [{ metadata: ["a"] }, "metadata must be an object of strings"],
        [{ metadata: { n: 1 } }, "metadata must be an object of strings"],
        [{ profileImage: 5 }, "profileImage must be a string"],
        [{ source: "" }, "source must be a string of 1 to 100 characters"]
      ] as const) {
        const refused = yield* call("POST", "/api/pool/claim", { body })
        expect(refused.status).toBe(400)
        expect(refused.json.message).toContain(words)
      }
      expect(yield* rows).toEqual(before)
    }).pipe(Effect.provide(world("dev", spec))))

  it.live("one instance per conversation: 409 with that instance's id, for a later claim and for claims that race", () =>
    Effect.gen(function*() {
      yield* fill
      const joinUrl = "https://dev.convos.org/v2?i=room-1"
      const first = yield* claimWith({ joinUrl })
      expect(first.status).toBe(200)
      const again = yield* claimWith({ joinUrl, agentName: "other" })
      expect(again).toMatchObject({ status: 409, json: { _tag: "ConversationTaken", instanceId: first.json.instanceId } })

      // Five claims for one new conversation at once: one instance, four refusals.
      const racing = "https://dev.convos.org/v2?i=room-2"
      const answers = yield* Effect.forEach(Array.from({ length: 5 }), () => claimWith({ joinUrl: racing }), { concurrency: "unbounded" })
      expect(answers.map((a) => a.status).sort()).toEqual([200, 409, 409, 409, 409])
      const won = answers.find((a) => a.status === 200)!.json.instanceId
      for (const lost of answers.filter((a) => a.status === 409)) expect([null, won]).toContain(lost.json.instanceId)
      expect((yield* rows).filter((r) => r.attributes.inviteUrl === racing).map((r) => r.status)).toEqual(["claimed"])

      // Awaiting acceptance holds the conversation too; once its instance is gone, the conversation is free.
      const pending = `https://dev.convos.org/v2?i=${AWAITS_ACCEPTANCE_MARKER}`
      const waiting = yield* claimWith({ joinUrl: pending })
      expect(waiting.json.status).toBe("pending_acceptance")
      expect((yield* claimWith({ joinUrl: pending })).status).toBe(409)
      yield* call("DELETE", `/api/pool/instances/${first.json.instanceId}`)
      yield* fill
      expect((yield* claimWith({ joinUrl })).status).toBe(200)
    }).pipe(Effect.provide(world("dev", spec))))

  it.live("Idempotency-Key: a retry and duplicates in flight get the first answer; a failed claim leaves nothing; another body is refused", () =>
    Effect.gen(function*() {
      yield* fill
      const first = yield* claimWith({ agentName: "once" }, { "idempotency-key": "k-1" })
      expect(first.status).toBe(200)
      const retry = yield* claimWith({ agentName: "once" }, { "idempotency-key": "k-1" })
      expect(retry).toEqual(first)
      const together = yield* Effect.forEach(Array.from({ length: 5 }), () => claimWith({ agentName: "burst" }, { "idempotency-key": "k-2" }), { concurrency: "unbounded" })
      expect(new Set(together.map((a) => JSON.stringify(a))).size).toBe(1)
      expect(together[0]!.status).toBe(200)
      expect((yield* rows).filter((r) => r.status === "claimed").length).toBe(2)

      const other = yield* claimWith({ agentName: "someone else" }, { "idempotency-key": "k-1" })
      expect(other).toMatchObject({ status: 400, json: { message: "this Idempotency-Key was used for a different claim" } })

      // Nothing idle: 503, not remembered; the retry, once the pool has refilled, claims.
      const drained = yield* call("POST", "/api/pool/drain", { body: { count: 10 } })
      expect(drained.status).toBe(200)
      const none = yield* claimWith({ agentName: "late" }, { "idempotency-key": "k-3" })
      expect(none.status).toBe(503)
      yield* fill
      const later = yield* claimWith({ agentName: "late" }, { "idempotency-key": "k-3" })
      expect(later.status).toBe(200)
    }).pipe(Effect.provide(world("dev", spec))))

  it.live("GET /api/pool/claim/stream: the replaced system's unnamed steps, then complete with the claim's answer", () =>
    Effect.gen(function*() {
      yield* fill
      const events = yield* streamClaim({ agentName: "Streamer", instructions: "hi", metadata: JSON.stringify({ via: "browser" }) })
      const steps = events.filter((e) => e.type === "step").map((e) => [e.step, e.status])
      expect(steps).toEqual([["claim", "active"], ["claim", "ok"], ["provision", "active"], ["provision", "ok"], ["convo", "ok"]])
      for (const e of events.filter((e) => e.type === "step")) expect(Object.keys(e).sort()).toEqual(["message", "status", "step", "type"])
      const complete = events.at(-1)
      expect(complete).toMatchObject({ type: "complete", ok: true, agentName: "Streamer", status: "claimed", joined: false })
      expect(typeof complete.instanceId).toBe("string")
      expect((yield* rows).find((r) => r.id === complete.instanceId)!.attributes.metadata).toBe(JSON.stringify({ via: "browser" }))

      const pending = yield* streamClaim({ joinUrl: `https://dev.convos.org/v2?i=${AWAITS_ACCEPTANCE_MARKER}` })
      expect(pending.find((e) => e.step === "provision" && e.status === "ok").message).toBe("Join is waiting for acceptance")
      expect(pending.at(-1)).toMatchObject({ type: "complete", ok: true, status: "pending_acceptance", conversationId: null })

      yield* call("POST", "/api/pool/drain", { body: { count: 10 } })
      const none = yield* streamClaim({})
      expect(none.map((e) => e.type === "step" ? [e.step, e.status] : [e.type, e.ok])).toEqual([["claim", "active"], ["claim", "fail"], ["complete", false]])
      expect(typeof none.at(-1).error).toBe("string")

      // Refused before the stream opens, as JSON.
      const bad = yield* call("GET", `/api/pool/claim/stream?metadata=${encodeURIComponent("{not json")}`)
      expect(bad).toMatchObject({ status: 400, json: { message: "metadata must be a JSON object of strings" } })
      expect((yield* call("GET", "/api/pool/claim/stream", { key: null })).status).toBe(401)
    }).pipe(Effect.provide(world("dev", spec))))
})

/**
 * The runtime contract from the pool's side (DESIGN §4): against the reference runtime, and against an emulator
 * that answers as a broken instance or the proxy in front of it does (HTML pages, 5xx, odd JSON, slow, gone).
 */
import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { HealthProbe, type Instance, InstanceRuntime, newInstance } from "@warmpool/reconciler"
import { type EmulatorRequest, startHttpEmulator } from "@warmpool/reconciler/testing"
import { Duration, Effect, Layer, Redacted } from "effect"
import type { AddressInfo } from "node:net"
import { AWAITS_ACCEPTANCE_MARKER, type ConvosClaim, ConvosRuntime } from "../src/index.js"
import { startReferenceRuntime } from "../src/reference-runtime/index.js"

const KEY = "pool-key-0123456789"

const clients = (apiKey = KEY) =>
  ConvosRuntime.layer({ apiKey: Redacted.make(apiKey), healthTimeout: Duration.millis(500) }).pipe(Layer.provide(FetchHttpClient.layer))

const instanceAt = (url: string | null): Instance =>
  newInstance({ id: "inst-1", pool: "pool", name: "convos-agent-1", status: "claiming", url, now: new Date() })

const provision = (url: string | null, request: ConvosClaim = { agentName: "tokyo", instructions: "plan a trip" }) =>
  Effect.flatMap(InstanceRuntime, (runtime) => runtime.provision(instanceAt(url), request))

const check = (url: string) => Effect.flatMap(HealthProbe, (health) => health.check({ id: "inst-1", url }))

/** A reference runtime on a free loopback port, closed with the scope. */
const referenceRuntime = (startupDelayMs: number, version?: string) =>
  Effect.acquireRelease(
    Effect.map(
      Effect.promise(() => startReferenceRuntime({ port: 0, apiKey: KEY, startupDelayMs, ...(version === undefined ? {} : { version }) })),
      (server) => ({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server })
    ),
    ({ server }) => Effect.sync(() => server.close())
  )

describe("Convos runtime client, against the reference runtime", () => {
  it.live("health is not ready during the start-up delay, ready after", () =>
    Effect.gen(function*() {
      const { url } = yield* referenceRuntime(400)
      expect(yield* check(url)).toBe("not-ready")
      yield* Effect.sleep(Duration.millis(450))
      expect(yield* check(url)).toBe("ready")
    }).pipe(Effect.provide(clients()), Effect.scoped))

  it.live("a runtime that reports its version is answered with it, ready or not", () =>
    Effect.gen(function*() {
      const { url } = yield* referenceRuntime(300, "0.9.2")
      expect(yield* check(url)).toEqual({ health: "not-ready", runtimeVersion: "0.9.2" })
      yield* Effect.sleep(Duration.millis(350))
      expect(yield* check(url)).toEqual({ health: "ready", runtimeVersion: "0.9.2" })
    }).pipe(Effect.provide(clients()), Effect.scoped))

  it.live("the first provision binds a conversation; a second is AlreadyBoundError (409)", () =>
    Effect.gen(function*() {
      const { url } = yield* referenceRuntime(0)
      const first = yield* provision(url)
      expect(first.conversationId).toMatch(/^[0-9a-f]{16}$/)
      expect(first.inviteUrl).toContain(first.conversationId)
      expect(first.joined).toBe(false)
      const again = yield* Effect.flip(provision(url))
      expect(again._tag).toBe("AlreadyBoundError")
    }).pipe(Effect.provide(clients()), Effect.scoped))

  it.live("with a join URL the instance joins that conversation", () =>
    Effect.gen(function*() {
      const { url } = yield* referenceRuntime(0)
      const joinUrl = "https://dev.convos.org/v2?i=abc"
      const joined = yield* provision(url, { agentName: "tokyo", instructions: "", joinUrl })
      expect([joined.inviteUrl, joined.joined]).toEqual([joinUrl, true])
    }).pipe(Effect.provide(clients()), Effect.scoped))

  it.live("a wrong key: health says unreachable, provision is rejected (401) and binds nothing", () =>
    Effect.gen(function*() {
      const { url } = yield* referenceRuntime(0)
      expect(yield* check(url).pipe(Effect.provide(clients("wrong-key")))).toBe("unreachable")
      const refused = yield* Effect.flip(provision(url).pipe(Effect.provide(clients("wrong-key"))))
      expect(refused).toMatchObject({ _tag: "ProvisionRejectedError", status: 401 })
      // Still unbound: the right key binds it.
      expect((yield* provision(url).pipe(Effect.provide(clients()))).joined).toBe(false)
    }).pipe(Effect.scoped))
})

describe("Convos runtime client, against a misbehaving instance", () => {
  const emulator = Effect.gen(function*() {
    const requests: Array<EmulatorRequest> = []
    const server = yield* startHttpEmulator((request) => {
      requests.push(request)
      if (request.path === "/pool/health") return { status: 200, body: { ready: true } }
      return { status: 200, body: { conversationId: "conv-1" } }
    })
    return { server, requests }
  })

  it.live("sends the bearer key and the request; fills what a terse answer leaves out", () =>
    Effect.gen(function*() {
      const { requests, server } = yield* emulator
      expect(yield* check(server.url)).toBe("ready")
      const result = yield* provision(server.url)
      expect(result).toEqual({ conversationId: "conv-1", inviteUrl: null, joined: false, status: null })
      expect(requests.map((r) => [r.method, r.path, r.headers.authorization])).toEqual([
        ["GET", "/pool/health", `Bearer ${KEY}`],
        ["POST", "/pool/provision", `Bearer ${KEY}`]
      ])
      expect(requests[1]!.body).toEqual({ agentName: "tokyo", instructions: "plan a trip" })
      // The replaced system's later fields go to the runtime as they came.
      const full = { agentName: "a", instructions: "b", joinUrl: "https://dev.convos.org/v2?i=x", profileImage: "https://img.test/a.png", metadata: { team: "blue" }, source: "web" }
      yield* provision(server.url, full)
      expect(requests[2]!.body).toEqual(full)
    }).pipe(Effect.provide(clients()), Effect.scoped))

  it.live("a join that awaits acceptance: its answer says so, and the claim is bound as pending_acceptance", () =>
    Effect.gen(function*() {
      const { url } = yield* referenceRuntime(0)
      const joinUrl = `https://dev.convos.org/v2?i=${AWAITS_ACCEPTANCE_MARKER}`
      const answer = yield* provision(url, { agentName: "a", instructions: "", joinUrl })
      expect(answer).toEqual({ conversationId: null, inviteUrl: joinUrl, joined: false, status: "pending_acceptance" })
      const runtime = yield* InstanceRuntime
      expect(runtime.boundAs?.(answer)).toBe("pending_acceptance")
      // Bound all the same: a second claim is refused.
      expect((yield* Effect.flip(provision(url))).name).toBe("AlreadyBoundError")
    }).pipe(Effect.provide(clients()), Effect.scoped))

  it.live("an answer with neither a conversation nor a pending join is an unknown outcome", () =>
    Effect.gen(function*() {
      const server = yield* startHttpEmulator(() => ({ status: 200, body: { conversationId: null } }))
      expect(yield* Effect.flip(provision(server.url))).toMatchObject({ _tag: "ProvisionUnknownError", message: "unexpected answer shape" })
    }).pipe(Effect.provide(clients()), Effect.scoped))

  it.live("each failure has the kind the claim flow acts on", () =>
    Effect.gen(function*() {
      const { server } = yield* emulator
      const failure = Effect.map(Effect.flip(provision(server.url)), (e) => ({ tag: e._tag, message: e.message }))
      server.inject({ _tag: "Status", status: 409, body: { error: "bound" } })
      expect((yield* failure).tag).toBe("AlreadyBoundError")
      server.inject({ _tag: "Status", status: 400, body: { error: "invalid joinUrl" } })
      expect(yield* failure).toEqual({ tag: "ProvisionRejectedError", message: expect.stringContaining("invalid joinUrl") })
      // 5xx and proxy pages: nobody knows whether it bound, so the instance must not serve another claim.
      server.inject({ _tag: "Html", status: 502 })
      expect(yield* failure).toEqual({ tag: "ProvisionUnknownError", message: "HTTP 502" })
      server.inject({ _tag: "Html", status: 200 })
      expect(yield* failure).toEqual({ tag: "ProvisionUnknownError", message: "non-JSON answer" })
      server.inject({ _tag: "Status", status: 200, body: { ok: true } })
      expect(yield* failure).toEqual({ tag: "ProvisionUnknownError", message: "unexpected answer shape" })
      // After all that, a normal answer still works.
      expect((yield* provision(server.url)).conversationId).toBe("conv-1")
    }).pipe(Effect.provide(clients()), Effect.scoped))

  it.live("an instance that is gone or has no URL", () =>
    Effect.gen(function*() {
      // The port of a runtime that has stopped: nothing listens there any more.
      const { url: closed } = yield* Effect.scoped(referenceRuntime(0))
      const gone = yield* Effect.flip(provision(closed))
      expect(gone._tag).toBe("ProvisionUnknownError")
      expect(gone.message).toContain("request failed")
      expect(yield* check(closed)).toBe("unreachable")
      expect(yield* Effect.flip(provision(null))).toMatchObject({ _tag: "ProvisionRejectedError", status: 0 })
    }).pipe(Effect.provide(clients())))

  it.live("health: an HTML page, an odd answer or a slow one is unreachable, never ready", () =>
    Effect.gen(function*() {
      const { server } = yield* emulator
      server.inject({ _tag: "Html", status: 503 }, { path: /health/ })
      expect(yield* check(server.url)).toBe("unreachable")
      server.inject({ _tag: "Status", status: 200, body: { ready: "yes" } }, { path: /health/ })
      expect(yield* check(server.url)).toBe("unreachable")
      // A version that is no string is ignored, not held against a ready instance.
      server.inject({ _tag: "Status", status: 200, body: { ready: true, version: 3 } }, { path: /health/ })
      expect(yield* check(server.url)).toBe("ready")
      server.inject({ _tag: "Delay", ms: 1_500 }, { path: /health/ })
      const started = Date.now()
      expect(yield* check(server.url)).toBe("unreachable")
      expect(Date.now() - started).toBeLessThan(1_200) // the probe's own timeout (500 ms), not the answer's delay
      expect(yield* check(server.url)).toBe("ready")
    }).pipe(Effect.provide(clients()), Effect.scoped))
})

/**
 * Credentials are never leaked and never logged: the real Controller, in-memory compute and store, and
 * both credential providers on their emulators, through many passes of creates, failures, claims, drains,
 * kills and dismissals. At the end live keys = live rows = live inboxes, and no log line holds a secret.
 */
import { FetchHttpClient } from "@effect/platform"
import { expect, it } from "@effect/vitest"
import { AgentMailCredentials } from "@warmpool/providers-agentmail"
import { startAgentMailEmulator } from "@warmpool/providers-agentmail/emulator"
import { combineCredentials, Controller, Credentials, LocalIncarnations, PoolSpec, SingleLeader, TransientError } from "@warmpool/reconciler"
import { InMemoryCompute, InMemoryComputeControl, InMemoryHealth, InMemoryRuntime, InMemoryStore, InMemoryStoreControl } from "@warmpool/reconciler/testing"
import { Cause, Duration, Effect, Layer, Logger, LogLevel, Option, Redacted } from "effect"
import { OpenRouterCredentials } from "../src/index.js"
import { startOpenRouterEmulator } from "../src/emulator/index.js"

const MANAGEMENT_KEY = "sk-or-v1-mgmt-soak-5f3a9c"
const AGENTMAIL_KEY = "am_live_soak_7e1d2b"

const spec = new PoolSpec({
  name: "soak",
  namePrefix: "convos-agent-",
  minIdle: 3,
  maxTotal: 12,
  createBatch: 3,
  createTimeoutMs: 300,
  listingGraceMs: 300,
  template: { image: "runtime:latest", env: {} }
})

/** mulberry32: the same run every time. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

it.live("soak: live keys = live inboxes = live rows after many faulty passes, and no secret in any log line", () =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const capture = Logger.make(({ annotations, cause, message }) => {
      lines.push(`${String(message)} ${JSON.stringify([...annotations])} ${Cause.isEmpty(cause) ? "" : Cause.pretty(cause)}`)
    })
    const openrouter = yield* startOpenRouterEmulator({ managementKey: MANAGEMENT_KEY })
    const agentmail = yield* startAgentMailEmulator({ apiKey: AGENTMAIL_KEY })
    const credentials = Layer.effect(
      Credentials,
      Effect.all([
        Effect.provide(Credentials, OpenRouterCredentials.layer({
          managementKey: Option.some(Redacted.make(MANAGEMENT_KEY)),
          sharedKey: Option.none(),
          keyLimit: 5,
          limitReset: "daily",
          apiUrl: openrouter.apiUrl
        })),
        Effect.provide(Credentials, AgentMailCredentials.layer({ apiKey: Option.some(Redacted.make(AGENTMAIL_KEY)), domain: Option.none(), apiUrl: agentmail.apiUrl }))
      ]).pipe(Effect.map(combineCredentials))
    ).pipe(Layer.provide(FetchHttpClient.layer))
    const world = Controller.layer(spec, { background: false }).pipe(
      Layer.provideMerge(Layer.mergeAll(InMemoryCompute.layer(), InMemoryStore.layer, InMemoryHealth.layer(), InMemoryRuntime.layer(), SingleLeader, LocalIncarnations.layer(), credentials))
    )

    yield* Effect.gen(function*() {
      const random = prng(11)
      const controller = yield* Controller
      const compute = yield* InMemoryComputeControl
      const store = yield* InMemoryStoreControl
      for (let pass = 0; pass < 60; pass++) {
        const rows = yield* store.rows
        const pick = <A>(xs: ReadonlyArray<A>) => xs[Math.floor(random() * xs.length)]
        const roll = random()
        if (roll < 0.1) openrouter.inject({ _tag: "Status", status: 401, body: { error: { code: 401, message: "No auth credentials found" } } }, { method: "POST" })
        else if (roll < 0.2) openrouter.inject({ _tag: "Status", status: 429, body: { error: { code: 429, message: "slow down" } }, headers: { "retry-after": "0" } })
        else if (roll < 0.3) agentmail.inject({ _tag: "Html", status: 503 }, { method: "DELETE" })
        else if (roll < 0.4) agentmail.inject({ _tag: "Status", status: 500, body: { name: "InternalError", message: "boom" } }, { times: 5, method: "POST" })
        if (random() < 0.2) yield* compute.failNext(1, new TransientError({ operation: "create", message: "504 from the platform" }), "create")
        if (random() < 0.3) yield* Effect.ignore(controller.claim({ label: `a${pass}` }))
        if (random() < 0.15) yield* controller.drain(1)
        const claimed = rows.filter((r) => r.status === "claimed")
        if (random() < 0.2 && claimed.length > 0) yield* Effect.ignore(controller.kill(pick(claimed)!.id))
        const services = yield* compute.services
        if (random() < 0.1 && services.length > 0) yield* compute.crash(pick(services)!.info.serviceId)
        for (const crashed of rows.filter((r) => r.status === "crashed")) yield* Effect.ignore(controller.dismiss(crashed.id))
        yield* controller.runPass
      }
      // Faults stop; abandoned creates time out and every pending delete finishes.
      for (let settle = 0; settle < 12; settle++) {
        for (const crashed of (yield* store.rows).filter((r) => r.status === "crashed")) yield* Effect.ignore(controller.dismiss(crashed.id))
        yield* Effect.sleep(Duration.millis(120))
        yield* controller.runPass
      }
      const rows = yield* store.rows
      expect(rows.length).toBeGreaterThan(0)
      expect(openrouter.keys().map((k) => k.name).sort()).toEqual(rows.map((r) => r.name).sort())
      expect(agentmail.inboxes().map((i) => i.client_id).sort()).toEqual(rows.map((r) => r.name).sort())
      expect(openrouter.issuedSecrets().length).toBeGreaterThan(rows.length) // keys came and went
    }).pipe(Effect.provide(world), Logger.withMinimumLogLevel(LogLevel.All), Effect.provide(Logger.replace(Logger.defaultLogger, capture)))

    expect(lines.length).toBeGreaterThan(60)
    expect(lines.some((l) => l.includes("UnauthorizedError"))).toBe(true)
    const secrets = [MANAGEMENT_KEY, AGENTMAIL_KEY, ...openrouter.issuedSecrets()]
    const leaks = lines.filter((line) => secrets.some((secret) => line.includes(secret)))
    expect(leaks).toEqual([])
  }).pipe(Effect.scoped), 60_000)

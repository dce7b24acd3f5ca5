import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { applyPatch, Credentials, newInstance } from "@warmpool/reconciler"
import { credentialsConformance } from "@warmpool/reconciler/conformance"
import { ConfigProvider, Context, Effect, Layer, Option, Redacted } from "effect"
import { AgentMailConfig, AgentMailCredentials, type AgentMailOptions } from "../src/index.js"
import { startAgentMailEmulator } from "../src/emulator/index.js"

const API_KEY = "am_live_0123456789abcdef"

class Emulator extends Context.Tag("test/AgentMailEmulator")<Emulator, Effect.Effect.Success<ReturnType<typeof startAgentMailEmulator>>>() {}

const world = (overrides: Partial<AgentMailOptions> = {}) =>
  Layer.unwrapEffect(Effect.map(Emulator, (emulator) =>
    AgentMailCredentials.layer({ apiKey: Option.some(Redacted.make(API_KEY)), domain: Option.none(), apiUrl: emulator.apiUrl, ...overrides }))).pipe(
    Layer.provide(FetchHttpClient.layer),
    Layer.provideMerge(Layer.scoped(Emulator, startAgentMailEmulator({ apiKey: API_KEY })))
  )

const instance = (id: string) => newInstance({ id, pool: "p", name: `convos-agent-${id}`, status: "creating", now: new Date() })

credentialsConformance("agentmail", world(), {
  isLive: (name) => Effect.map(Emulator, (emulator) => emulator.inboxes().some((i) => i.client_id === name))
})

describe("AgentMailCredentials", () => {
  it.effect("an inbox per instance, its id in the env and the row; a retried issue returns the same inbox", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const credentials = yield* Credentials
      const first = yield* credentials.issue(instance("AbC"))
      const again = yield* credentials.issue(instance("AbC"))
      expect(first).toEqual({ env: { AGENTMAIL_INBOX_ID: "convos-agent-abc@agentmail.to" }, handles: { agentmailInboxId: "convos-agent-abc@agentmail.to" } })
      expect(again).toEqual(first)
      expect(emulator.inboxes()).toHaveLength(1)
    }).pipe(Effect.provide(world())))

  it.effect("uses AGENTMAIL_DOMAIN, and releases a row without an inbox id by its address", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const credentials = yield* Credentials
      const issued = yield* credentials.issue(instance("d"))
      expect(issued.handles).toEqual({ agentmailInboxId: "convos-agent-d@mail.convos.org" })
      yield* credentials.release(instance("d"))
      expect(emulator.inboxes()).toEqual([])
      yield* credentials.release(applyPatch(instance("d"), { handles: issued.handles })) // already gone: fine
    }).pipe(Effect.provide(world({ domain: Option.some("mail.convos.org") }))))

  it.live("a 500 is retried after a backoff", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      emulator.inject({ _tag: "Status", status: 500, body: { name: "InternalError", message: "boom" } }, { method: "POST" })
      yield* Effect.flatMap(Credentials, (c) => c.issue(instance("r")))
      expect(emulator.calls().filter((c) => c.method === "POST")).toHaveLength(2)
    }).pipe(Effect.provide(world())))

  it.effect("a wrong API key fails once with UnauthorizedError", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const error = yield* Effect.flip(Effect.flatMap(Credentials, (c) => c.issue(instance("u"))))
      expect(error._tag).toBe("UnauthorizedError")
      expect(emulator.calls()).toHaveLength(1)
      expect(JSON.stringify(error) + String(error)).not.toContain("am_live_wrong")
    }).pipe(Effect.provide(world({ apiKey: Option.some(Redacted.make("am_live_wrong")) }))))

  it.effect("reads AGENTMAIL_* from the environment and rejects a malformed domain", () =>
    Effect.gen(function*() {
      const fromEnv = (env: Record<string, string>) => Effect.withConfigProvider(AgentMailConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))
      expect((yield* fromEnv({})).apiUrl).toBe("https://api.agentmail.to/v0")
      expect(Option.getOrNull((yield* fromEnv({ AGENTMAIL_DOMAIN: "mail.convos.org" })).domain)).toBe("mail.convos.org")
      expect((yield* Effect.flip(fromEnv({ AGENTMAIL_DOMAIN: "not a domain" })))._tag).toBe("ConfigError")
    }))
})

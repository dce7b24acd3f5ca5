import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { applyPatch, Credentials, newInstance } from "@warmpool/reconciler"
import { credentialsConformance } from "@warmpool/reconciler/conformance"
import { ConfigProvider, Context, Effect, Layer, Option, Redacted } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { resolve } from "node:path"
import { OpenRouterConfig, OpenRouterCredentials, type OpenRouterOptions } from "../src/index.js"
import { startOpenRouterEmulator } from "../src/emulator/index.js"

const MANAGEMENT_KEY = "sk-or-v1-management-0123456789abcdef"

class Emulator extends Context.Tag("test/OpenRouterEmulator")<
  Emulator,
  Effect.Effect.Success<ReturnType<typeof startOpenRouterEmulator>>
>() {}

const options = (apiUrl: string, managementKey = MANAGEMENT_KEY): OpenRouterOptions => ({
  managementKey: Option.some(Redacted.make(managementKey)),
  sharedKey: Option.none(),
  keyLimit: 20,
  limitReset: "monthly",
  apiUrl
})

/** The emulator and a provider pointed at it. */
const world = (managementKey = MANAGEMENT_KEY) =>
  Layer.unwrapEffect(Effect.map(Emulator, (emulator) => OpenRouterCredentials.layer(options(emulator.apiUrl, managementKey)))).pipe(
    Layer.provide(FetchHttpClient.layer),
    Layer.provideMerge(Layer.scoped(Emulator, startOpenRouterEmulator({ managementKey: MANAGEMENT_KEY })))
  )

const instance = (id: string) => newInstance({ id, pool: "p", name: `convos-agent-${id}`, status: "creating", now: new Date() })

credentialsConformance("openrouter", world(), {
  isLive: (name) => Effect.map(Emulator, (emulator) => emulator.keys().some((k) => k.name === name))
})

describe("OpenRouterCredentials", () => {
  it.effect("creates a key named after the instance, with the spend limit; the secret goes to the env, the hash to the row", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const issued = yield* Effect.flatMap(Credentials, (c) => c.issue(instance("abc")))
      const [key] = emulator.keys()
      expect(key).toMatchObject({ name: "convos-agent-abc", limit: 20, limit_reset: "monthly" })
      expect(issued.env).toEqual({ OPENROUTER_API_KEY: key!.key })
      expect(issued.handles).toEqual({ openrouterKeyHash: key!.hash })
    }).pipe(Effect.provide(world())))

  it.effect("a row without a hash is released by name, searching every page of keys", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      for (let i = 0; i < 230; i++) emulator.seedKey(`someone-else-${i}`)
      yield* Effect.flatMap(Credentials, (c) => c.issue(instance("late")))
      yield* Effect.flatMap(Credentials, (c) => c.release(instance("late")))
      expect(emulator.keys().some((k) => k.name === "convos-agent-late")).toBe(false)
      expect(emulator.keys()).toHaveLength(230)
      // Three pages were read to find it (offsets 0, 100, 200).
      expect(emulator.calls().filter((c) => c.method === "GET").length).toBeGreaterThanOrEqual(3)
    }).pipe(Effect.provide(world())))

  it.live("a 429 is waited out for its Retry-After, and an HTML 502 from the CDN is retried, not parsed", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      emulator.inject({ _tag: "Status", status: 429, body: { error: { code: 429, message: "Rate limit exceeded" } }, headers: { "retry-after": "1" } }, { method: "POST" })
      emulator.inject({ _tag: "Html", status: 502 }, { method: "POST" })
      const started = Date.now()
      yield* Effect.flatMap(Credentials, (c) => c.issue(instance("busy")))
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000)
      expect(emulator.keys().map((k) => k.name)).toEqual(["convos-agent-busy"])
    }).pipe(Effect.provide(world())))

  it.effect("a wrong management key is Unauthorized, not retried, and the key is in no message", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const error = yield* Effect.flip(Effect.flatMap(Credentials, (c) => c.issue(instance("x"))))
      expect(error._tag).toBe("UnauthorizedError")
      expect(emulator.calls()).toHaveLength(1)
      expect(JSON.stringify(error)).not.toContain("wrong-key")
      expect(String(error)).not.toContain("wrong-key")
    }).pipe(Effect.provide(world("sk-or-v1-wrong-key"))))

  it.effect("without a management key the shared key is injected and nothing is created", () =>
    Effect.gen(function*() {
      const credentials = yield* Credentials
      const issued = yield* credentials.issue(instance("s"))
      expect(issued).toEqual({ env: { OPENROUTER_API_KEY: "sk-or-v1-shared" }, handles: {} })
      yield* credentials.release(applyPatch(instance("s"), { handles: issued.handles }))
    }).pipe(Effect.provide(OpenRouterCredentials.layer({ ...options("http://127.0.0.1:9"), managementKey: Option.none(), sharedKey: Option.some(Redacted.make("sk-or-v1-shared")) }).pipe(Layer.provide(FetchHttpClient.layer)))))

  it.effect("reads the seed's environment variables, with their defaults, and rejects bad values", () =>
    Effect.gen(function*() {
      const fromEnv = (env: Record<string, string>) => Effect.withConfigProvider(OpenRouterConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))
      const defaults = yield* fromEnv({})
      expect(defaults).toMatchObject({ keyLimit: 20, limitReset: "monthly", apiUrl: "https://openrouter.ai/api/v1" })
      expect(Option.isNone(defaults.managementKey)).toBe(true)
      const set = yield* fromEnv({ OPENROUTER_MANAGEMENT_KEY: "mk", OPENROUTER_KEY_LIMIT: "5", OPENROUTER_KEY_LIMIT_RESET: "weekly" })
      expect(set).toMatchObject({ keyLimit: 5, limitReset: "weekly" })
      expect(String(set.managementKey)).not.toContain("mk")
      expect((yield* Effect.flip(fromEnv({ OPENROUTER_KEY_LIMIT_RESET: "hourly" })))._tag).toBe("ConfigError")
      expect((yield* Effect.flip(fromEnv({ OPENROUTER_KEY_LIMIT: "-1" })))._tag).toBe("ConfigError")
    }))
})

describe("OpenRouter's published API description", () => {
  const reference = resolve(import.meta.dirname, "../../../../shared/reference/openrouter/openapi.yaml")
  it.runIf(existsSync(reference))("still has the endpoints and limit_reset values the provider uses", () => {
    const spec = readFileSync(reference, "utf8")
    expect(spec).toContain("\n  /keys:\n")
    expect(spec).toContain("\n  /keys/{hash}:\n")
    const post = spec.slice(spec.indexOf("\n  /keys:\n"), spec.indexOf("\n  /keys/{hash}:\n"))
    for (const value of ["daily", "weekly", "monthly"]) expect(post).toContain(`- '${value}'`)
  })
  it.skipIf(existsSync(reference))("skipped: ../shared/reference/openrouter/openapi.yaml is not beside the repository", () => {})
})

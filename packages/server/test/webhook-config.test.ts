/** The webhook settings of the server: the tick stretches when Railway webhooks (or the Kubernetes watch) are on, unless set. */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either } from "effect"
import { eitherLines, resolveApiKey, ServerConfig } from "../src/index.js"

const settings = (env: Record<string, string>) =>
  Effect.either(Effect.withConfigProvider(ServerConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))).pipe(Effect.map(eitherLines))

const railway = { RAILWAY_API_TOKEN: "t", POOL_API_KEY: "k" }
const webhooks = { POOL_PUBLIC_URL: "https://pool.example/", RAILWAY_WORKSPACE_ID: "w" }

describe("webhook settings", () => {
  it.effect("TICK_INTERVAL_MS defaults to 30 s, or 5 min with Railway webhooks on; a set value wins", () =>
    Effect.gen(function*() {
      const tick = (env: Record<string, string>) => Effect.map(settings(env), Either.map((s) => s.pool.tickIntervalMs))
      expect(yield* tick(railway)).toEqual(Either.right(30_000))
      expect(yield* tick({ ...railway, ...webhooks })).toEqual(Either.right(300_000))
      expect(yield* tick({ ...railway, ...webhooks, TICK_INTERVAL_MS: "60000" })).toEqual(Either.right(60_000))
      // Without the Railway provider there is nothing to call back.
      expect(yield* tick(webhooks)).toEqual(Either.right(30_000))
      // Kubernetes' Pod watch starts passes as webhooks do.
      expect(yield* tick({ POOL_PROVIDER: "kubernetes" })).toEqual(Either.right(300_000))
      expect(Either.map(yield* settings({ POOL_PROVIDER: "kubernetes" }), (s) => s.provider)).toEqual(Either.right("kubernetes"))
      const ok = yield* settings({ ...railway, ...webhooks })
      expect(Either.map(ok, (s) => s.webhooks.publicUrl)).toEqual(Either.right(expect.objectContaining({ value: "https://pool.example" })))
    }))

  it.effect("a bad POOL_PUBLIC_URL, a short RAILWAY_WEBHOOK_SECRET or a bad tick stops the start with a line that says so", () =>
    Effect.gen(function*() {
      const problem = (env: Record<string, string>) => Effect.map(settings({ ...railway, ...env }), (r) => (Either.isLeft(r) ? r.left.join("\n") : ""))
      expect(yield* problem({ POOL_PUBLIC_URL: "pool.example" })).toMatch(/POOL_PUBLIC_URL: must be an http\(s\) URL/)
      const secret = yield* problem({ RAILWAY_WEBHOOK_SECRET: "short" })
      expect(secret).toMatch(/RAILWAY_WEBHOOK_SECRET: must be at least 16 characters/)
      expect(secret).not.toContain("short")
      expect(yield* problem({ TICK_INTERVAL_MS: "5" })).toMatch(/TICK_INTERVAL_MS: must be a whole number ≥ 100/)
    }))
})

describe("the kubernetes provider's settings", () => {
  it.effect("needs POOL_API_KEY, as railway does: instances and clients authenticate with it", () =>
    Effect.gen(function*() {
      const kubernetes = yield* settings({ POOL_PROVIDER: "kubernetes" })
      expect(Either.map(kubernetes, resolveApiKey)).toEqual(Either.right(Either.left("POOL_API_KEY: required with the kubernetes provider (instances and clients authenticate with it)")))
    }))
})

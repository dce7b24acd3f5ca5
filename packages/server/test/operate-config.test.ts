/** PROTECTED_INSTANCES, POOL_CLAIM_KEYS and what /api/pool/info reports, as the server reads them at start. */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Redacted } from "effect"
import { ServerConfig } from "../src/config.js"

const load = (env: Record<string, string>) =>
  Either.getOrThrow(Effect.runSync(Effect.either(Effect.withConfigProvider(ServerConfig, ConfigProvider.fromMap(new Map(Object.entries(env)))))))

describe("operator configuration", () => {
  it("reads comma-separated ids and keys, blanks and empty items dropped; none when unset", () => {
    const settings = load({ PROTECTED_INSTANCES: " a1 ,b2,, c3 ", POOL_CLAIM_KEYS: "k1, k2" })
    expect(settings.protectedInstances).toEqual(["a1", "b2", "c3"])
    expect(settings.claimKeys.map(Redacted.value)).toEqual(["k1", "k2"])
    expect(load({}).protectedInstances).toEqual([])
    expect(load({}).claimKeys).toEqual([])
  })

  it("reports the deployment as the replaced system did: POOL_ENVIRONMENT before RAILWAY_ENVIRONMENT_NAME, source branch before git branch", () => {
    expect(load({}).deployment).toEqual({ environment: "local", branch: "unknown", railwayServiceId: "" })
    expect(load({ RAILWAY_ENVIRONMENT_NAME: "staging", RAILWAY_GIT_BRANCH: "main", RAILWAY_SERVICE_ID: "s1" }).deployment)
      .toEqual({ environment: "staging", branch: "main", railwayServiceId: "s1" })
    expect(load({ POOL_ENVIRONMENT: "production", RAILWAY_ENVIRONMENT_NAME: "staging", RAILWAY_SOURCE_BRANCH: "release", RAILWAY_GIT_BRANCH: "main" }).deployment)
      .toEqual({ environment: "production", branch: "release", railwayServiceId: "" })
  })
})

/** POOL_AUTOSCALE and its variables: decoded into the pool's spec, or refused with one line per problem. */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Redacted } from "effect"
import { poolSpecOf } from "../src/pools.js"
import { configErrorLines, ServerConfig } from "../src/config.js"

const load = (env: Record<string, string>) =>
  Effect.runSync(Effect.either(Effect.withConfigProvider(ServerConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))))

const specOf = (env: Record<string, string>) => {
  const settings = load(env)
  if (Either.isLeft(settings)) throw new Error(configErrorLines(settings.left).join("\n"))
  return poolSpecOf(settings.right, Redacted.make("key"))
}

describe("autoscale configuration", () => {
  it("is off unless POOL_AUTOSCALE=on: a fixed pool of POOL_MIN_IDLE", () => {
    expect(Either.getOrThrow(specOf({ POOL_MAX_IDLE: "9" })).autoscale).toBeUndefined()
    expect(Either.getOrThrow(specOf({ POOL_AUTOSCALE: "off" })).autoscale).toBeUndefined()
  })

  it("reads the target miss rate, the ceiling and the scale-down delay, with defaults", () => {
    expect(Either.getOrThrow(specOf({ POOL_AUTOSCALE: "on" })).autoscale).toEqual({ targetMissRate: 0.01, scaleDownAfterMs: 600_000 })
    const spec = Either.getOrThrow(specOf({
      POOL_AUTOSCALE: "on",
      POOL_MIN_IDLE: "2",
      POOL_MAX_TOTAL: "80",
      POOL_TARGET_MISS_RATE: "0.02",
      POOL_MAX_IDLE: "45",
      POOL_SCALE_DOWN_AFTER_MS: "300000"
    }))
    expect(spec).toMatchObject({ minIdle: 2, maxTotal: 80, autoscale: { targetMissRate: 0.02, maxIdle: 45, scaleDownAfterMs: 300_000 } })
  })

  it("refuses bad values with one line per variable", () => {
    const settings = load({ POOL_AUTOSCALE: "maybe", POOL_TARGET_MISS_RATE: "2", POOL_MAX_IDLE: "-1", POOL_SCALE_DOWN_AFTER_MS: "0" })
    expect(Either.isLeft(settings)).toBe(true)
    const lines = Either.isLeft(settings) ? configErrorLines(settings.left) : []
    for (const name of ["POOL_AUTOSCALE", "POOL_TARGET_MISS_RATE", "POOL_MAX_IDLE", "POOL_SCALE_DOWN_AFTER_MS"]) {
      expect(lines.filter((line) => line.startsWith(`${name}: `)), JSON.stringify(lines)).toHaveLength(1)
    }
    expect(lines).toContain("POOL_TARGET_MISS_RATE: must be a number between 0 and 1 (exclusive)")
  })

  it("refuses a ceiling outside [POOL_MIN_IDLE, POOL_MAX_TOTAL]", () => {
    expect(specOf({ POOL_AUTOSCALE: "on", POOL_MAX_IDLE: "60" })).toEqual(Either.left(["pool: autoscale.maxIdle (60) must be ≤ maxTotal (50)"]))
    expect(specOf({ POOL_AUTOSCALE: "on", POOL_MIN_IDLE: "5", POOL_MAX_IDLE: "4" })).toEqual(Either.left(["pool: autoscale.maxIdle (4) must be ≥ minIdle (5)"]))
  })
})

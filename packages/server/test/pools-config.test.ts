/** Declaring pools: POOLS (JSON) or POOLS_FILE (JSON or YAML), defaults from the seed's variables, one line per problem. */
import { NodeContext } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { freshDatabase } from "@warmpool/reconciler-pg/testing"
import { ConfigProvider, Effect, Either, Redacted } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { inject } from "vitest"
import { carryOverSeedPool, poolSpecsOf, ServerConfig } from "../src/index.js"

const KEY = Redacted.make("config-test-key")

/** The pools a given environment declares, or the problems as lines. */
const poolsFrom = (env: Record<string, string>) =>
  Effect.flatMap(ServerConfig, (settings) => poolSpecsOf(settings, KEY)).pipe(
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
    Effect.mapError((error) => ("lines" in error ? error.lines : [String(error)])),
    Effect.either,
    Effect.provide(NodeContext.layer)
  )

describe("declared pools", () => {
  it.effect("without POOLS the seed's variables make the one default pool, as before", () =>
    Effect.gen(function*() {
      const pools = yield* poolsFrom({ POOL_MIN_IDLE: "2", RAILWAY_RUNTIME_IMAGE: "img:1" })
      expect(pools._tag).toBe("Right")
      if (pools._tag !== "Right") return
      expect(pools.right.map((p) => [p.name, p.minIdle, p.namePrefix, p.template.image])).toEqual([["default", 2, "convos-agent-", "img:1"]])
    }))

  it.effect("POOLS: each pool its image, env and sizes; what it leaves out comes from the seed's variables", () =>
    Effect.gen(function*() {
      const pools = yield* poolsFrom({
        POOL_MAX_TOTAL: "20",
        POOL_MAX_SURGE: "3",
        OPENCLAW_PRIMARY_MODEL: "m1",
        POOLS: JSON.stringify([
          { name: "openclaw", image: "ghcr.io/xmtplabs/convos-runtime:latest", minIdle: 3, maxTotal: 50, env: { OPENCLAW_PRIMARY_MODEL: "m2" } },
          { name: "hermes", image: "hermes:1", minIdle: 1, maxSurge: 2, stuckTimeoutMs: 60000 }
        ])
      })
      expect(pools._tag).toBe("Right")
      if (pools._tag !== "Right") return
      const [openclaw, hermes] = pools.right
      expect(openclaw).toMatchObject({ name: "openclaw", minIdle: 3, maxTotal: 50, namePrefix: "convos-agent-", maxSurge: 3 })
      expect(openclaw!.template.env).toMatchObject({ OPENCLAW_PRIMARY_MODEL: "m2", POOL_API_KEY: "config-test-key", PORT: "8080" })
      expect(hermes).toMatchObject({ name: "hermes", minIdle: 1, maxTotal: 20, namePrefix: "convos-hermes-", maxSurge: 2, stuckTimeoutMs: 60000 })
      expect(hermes!.template).toMatchObject({ image: "hermes:1", env: { OPENCLAW_PRIMARY_MODEL: "m1" } })
    }))

  it.effect("POOLS_FILE: a YAML file (or JSON: YAML reads both)", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "warmpool-pools-"))
      writeFileSync(join(dir, "pools.yaml"), "- name: openclaw\n  image: oc:2\n  minIdle: 2\n- name: hermes\n  image: hermes:2\n  minIdle: 0\n  env:\n    MODE: fast\n")
      writeFileSync(join(dir, "pools.json"), JSON.stringify([{ name: "solo", image: "solo:1", minIdle: 1 }]))
      const yaml = yield* poolsFrom({ POOLS_FILE: join(dir, "pools.yaml") })
      expect(yaml._tag === "Right" && yaml.right.map((p) => [p.name, p.template.image, p.template.env.MODE])).toEqual([["openclaw", "oc:2", undefined], ["hermes", "hermes:2", "fast"]])
      const json = yield* poolsFrom({ POOLS_FILE: join(dir, "pools.json") })
      expect(json._tag === "Right" && json.right.map((p) => p.name)).toEqual(["solo"])
    }))

  it.effect("every problem is one line naming its pool", () =>
    Effect.gen(function*() {
      const bad = yield* poolsFrom({
        POOLS: JSON.stringify([
          { name: "openclaw", minIdle: -1, image: "" },
          { name: "Hermes!", minIdle: 5, maxTotal: 2, colour: "blue" },
          "nope"
        ])
      })
      expect(bad._tag).toBe("Left")
      if (bad._tag !== "Left") return
      expect(bad.left).toHaveLength(5)
      expect(bad.left).toEqual(expect.arrayContaining([
        "POOLS[0] (openclaw): minIdle must be a whole number ≥ 0",
        "POOLS[0] (openclaw): image must not be empty",
        expect.stringMatching(/^POOLS\[1\] \(Hermes!\): name must be 1-63 characters/),
        expect.stringMatching(/^POOLS\[1\] \(Hermes!\): colour: is unexpected/),
        "POOLS[2]: must be an object"
      ]))
      const clash = yield* poolsFrom({ POOLS: JSON.stringify([{ name: "a", minIdle: 1 }, { name: "a", minIdle: 1 }, { name: "b", minIdle: 1, namePrefix: "convos-agent-b-" }]) })
      expect(clash._tag === "Left" && clash.left).toEqual([
        'POOLS: pool name "a" is declared twice',
        'POOLS: pools "a" and "b": namePrefix "convos-agent-" and "convos-agent-b-" overlap; give each pool a prefix that does not start with another\'s'
      ])
      for (const [env, line] of [
        [{ POOLS: "[{" }, /^POOLS: cannot be parsed: /],
        [{ POOLS: "[]" }, /^POOLS: must be a non-empty array of pools$/],
        [{ POOLS: "[]", POOLS_FILE: "/x" }, /^POOLS and POOLS_FILE: set one of them, not both$/],
        [{ POOLS_FILE: "/no/such/pools.yaml" }, /^POOLS_FILE: cannot read \/no\/such\/pools.yaml/]
      ] as const) {
        const answer = yield* poolsFrom(env)
        expect(answer._tag === "Left" && answer.left.length === 1 && answer.left[0]).toMatch(line)
      }
    }))
})

describe("moving to declared pools", () => {
  it.effect("the seed pool's rows go to the first declared pool when it names services the same way; otherwise they stay", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`INSERT INTO instances (id, name, status, pool) VALUES ('a', 'convos-agent-a', 'claimed', 'default'), ('b', 'convos-agent-b', 'idle', 'default')`
      const carry = (env: Record<string, string>) =>
        Effect.gen(function*() {
          const settings = yield* ServerConfig
          const specs = Either.getOrThrow(yield* Effect.either(poolSpecsOf(settings, KEY)))
          return yield* carryOverSeedPool(settings, specs)
        }).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))), Effect.provide(NodeContext.layer))
      const pools = () => sql<{ pool: string }>`SELECT pool FROM instances ORDER BY id`.pipe(Effect.map((rows) => rows.map((r) => r.pool)))
      // The seed pool is declared, or the first pool names its services otherwise: nothing moves.
      expect(yield* carry({ POOLS: JSON.stringify([{ name: "hermes", minIdle: 1 }, { name: "default", minIdle: 1, namePrefix: "convos-d-" }]) })).toBe(0)
      expect(yield* carry({ POOLS: JSON.stringify([{ name: "openclaw", minIdle: 1, namePrefix: "convos-oc-" }]) })).toBe(0)
      expect(yield* pools()).toEqual(["default", "default"])
      expect(yield* carry({ POOLS: JSON.stringify([{ name: "openclaw", minIdle: 1 }, { name: "hermes", minIdle: 1 }]) })).toBe(2)
      expect(yield* pools()).toEqual(["openclaw", "openclaw"])
    }).pipe(Effect.provide(freshDatabase(inject("postgresUrl")))))
})

/**
 * The operator commands (`status`, `claim`, `drain`) of the built CLI, run as an operator runs them, against a
 * server on loopback (in-memory services): what they print, what they change, and how they fail.
 */
import { HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Controller, PoolSpec, Pools } from "@warmpool/reconciler"
import { InMemoryStoreControl } from "@warmpool/reconciler/testing"
import { inMemoryConvosServices } from "@warmpool/providers-convos/testing"
import { Effect, Layer, Redacted } from "effect"
import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import { createServer } from "node:http"
import { resolve } from "node:path"
import { httpApiLayer } from "../src/index.js"

const main = resolve(import.meta.dirname, "../dist/main.js")
const KEY = "cli-test-key-0123456789"
const spec = new PoolSpec({ name: "pool", namePrefix: "convos-agent-", minIdle: 2, maxTotal: 5, template: { image: "img", env: {} } })

const world = httpApiLayer({ environment: "dev", apiKey: Redacted.make(KEY) }).pipe(
  Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
  Layer.provideMerge(Controller.layer(spec, { background: false })),
  Layer.provideMerge(inMemoryConvosServices())
)

const serverUrl = Effect.map(HttpServer.HttpServer, (server) => `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`)

/** Runs the CLI in its own process (the server answers from this one meanwhile). */
const cli = (args: ReadonlyArray<string>, env: Record<string, string> = { POOL_API_KEY: KEY }) =>
  Effect.async<{ readonly code: number; readonly stdout: string; readonly stderr: string }>((resume) => {
    execFile(process.execPath, [main, ...args], { env: { PATH: process.env.PATH ?? "", ...env }, timeout: 30_000 }, (error, stdout, stderr) =>
      resume(Effect.succeed({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr })))
  })

const filled = Effect.flatMap(Controller, (c) => Effect.repeatN(c.runPass, 1))

/** Two pools: the default `pool` and `hermes`. */
const twoPools = httpApiLayer({ environment: "dev", apiKey: Redacted.make(KEY) }).pipe(
  Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
  Layer.provideMerge(Pools.layer([spec, new PoolSpec({ ...spec, name: "hermes", namePrefix: "convos-hermes-", minIdle: 1 })], { background: false })),
  Layer.provideMerge(inMemoryConvosServices())
)

describe.runIf(existsSync(main))("CLI operator commands", () => {
  it.live("with several pools: status shows each, --pool picks one, an unknown pool is refused", () =>
    Effect.gen(function*() {
      yield* Effect.flatMap(Pools, (pools) => Effect.forEach(pools.all, (c) => Effect.repeatN(c.runPass, 1)))
      const url = yield* serverUrl
      const status = yield* cli(["status", "--url", url])
      expect(status.stdout.split("\n")[0]).toContain("idle 3 ")
      expect(status.stdout).toMatch(/\n {2}pool: .*idle 2/)
      expect(status.stdout).toMatch(/\n {2}hermes: .*idle 1/)
      const claimed = yield* cli(["claim", "--url", url, "--agent-name", "a", "--pool", "hermes"])
      const row = (yield* Effect.flatMap(InMemoryStoreControl, (c) => c.rows)).find((r) => r.id === JSON.parse(claimed.stdout).instanceId)
      expect(row).toMatchObject({ pool: "hermes", status: "claimed" })
      const hermes = yield* cli(["status", "--url", url, "--pool", "hermes"])
      expect(hermes.stdout.split("\n")[0]).toContain("claimed 1")
      const unknown = yield* cli(["drain", "--url", url, "--count", "1", "--pool", "nope"])
      expect(unknown.code).toBe(1)
      expect(unknown.stderr).toContain('HTTP 400: unknown pool "nope"; known pools: pool, hermes')
    }).pipe(Effect.provide(twoPools)), 60_000)

  it.live("status prints the counts and every instance", () =>
    Effect.gen(function*() {
      yield* filled
      const url = yield* serverUrl
      const { code, stdout } = yield* cli(["status", "--url", url])
      expect(code).toBe(0)
      const [counts, ...lines] = stdout.trim().split("\n")
      expect(counts).toContain("idle 2")
      expect(counts).toContain("claimed 0")
      const rows = yield* Effect.flatMap(InMemoryStoreControl, (c) => c.rows)
      expect(lines.map((l) => l.split(/\s+/)[0]).sort()).toEqual(rows.map((r) => r.id).sort())
    }).pipe(Effect.provide(world)), 60_000)

  it.live("claim provisions an instance and prints the seed's answer; status then shows it claimed", () =>
    Effect.gen(function*() {
      yield* filled
      const url = yield* serverUrl
      const claimed = yield* cli(["claim", "--url", url, "--agent-name", "tokyo", "--instructions", "plan a trip"])
      expect(claimed.code).toBe(0)
      const answer = JSON.parse(claimed.stdout)
      expect(Object.keys(answer).sort()).toEqual(["agentName", "conversationId", "gatewayToken", "gatewayUrl", "instanceId", "inviteUrl", "joined", "status"])
      const row = (yield* Effect.flatMap(InMemoryStoreControl, (c) => c.rows)).find((r) => r.id === answer.instanceId)
      expect(row).toMatchObject({ status: "claimed", attributes: { agentName: "tokyo", instructions: "plan a trip", conversationId: answer.conversationId } })
      const { stdout } = yield* cli(["status", "--url", url])
      expect(stdout).toContain("claimed 1")
      expect(stdout).toMatch(new RegExp(`${answer.instanceId}\\s+claimed\\s+tokyo`))
    }).pipe(Effect.provide(world)), 60_000)

  it.live("drain marks idle instances for removal and prints their ids", () =>
    Effect.gen(function*() {
      yield* filled
      const url = yield* serverUrl
      const { code, stdout } = yield* cli(["drain", "--url", url, "--count", "1"])
      expect(code).toBe(0)
      const { drained } = JSON.parse(stdout) as { drained: Array<string> }
      expect(drained).toHaveLength(1)
      const rows = yield* Effect.flatMap(InMemoryStoreControl, (c) => c.rows)
      expect(rows.find((r) => r.id === drained[0])?.status).toBe("deleting")
      expect(rows.filter((r) => r.status === "idle")).toHaveLength(1)
    }).pipe(Effect.provide(world)), 60_000)

  it.live("a wrong key: exit 1 with the server's 401, the key never printed, nothing changed", () =>
    Effect.gen(function*() {
      yield* filled
      const url = yield* serverUrl
      const wrong = "wrong-key-abcdefghijklmnop"
      const { code, stderr, stdout } = yield* cli(["claim", "--url", url, "--agent-name", "x"], { POOL_API_KEY: wrong })
      expect(code).toBe(1)
      expect(stderr).toContain("HTTP 401")
      expect(stdout + stderr).not.toContain(wrong)
      const rows = yield* Effect.flatMap(InMemoryStoreControl, (c) => c.rows)
      expect(rows.every((r) => r.status === "idle")).toBe(true)
    }).pipe(Effect.provide(world)), 60_000)

  it.live("no server at the URL, or a missing option: exit 1 with a line that says so", () =>
    Effect.gen(function*() {
      const unreachable = yield* cli(["status", "--url", "http://127.0.0.1:9"])
      expect(unreachable.code).toBe(1)
      expect(unreachable.stderr).toContain("http://127.0.0.1:9")
      const missing = yield* cli(["drain", "--url", "http://127.0.0.1:9"])
      expect(missing.code).not.toBe(0)
      expect(missing.stdout + missing.stderr).toContain("--count")
    }), 60_000)
})

/**
 * `POST /api/pool/self-destruct` over real loopback HTTP: only an instance's own gateway token opens it (never
 * POOL_API_KEY); its row goes to `deleting` and the usual path removes service and credentials; no token is logged.
 */
import { describe, expect, it } from "@effect/vitest"
import { Controller, InstanceStore, PoolSpec } from "@warmpool/reconciler"
import { InMemoryComputeControl, InMemoryCredentialsControl, InMemoryStoreControl } from "@warmpool/reconciler/testing"
import { Effect, Layer, Logger, LogLevel } from "effect"
import { call, KEY, world } from "./support/http-world.js"

const spec = new PoolSpec({ name: "pool", namePrefix: "convos-agent-", minIdle: 2, maxTotal: 5, template: { image: "img", env: {} } })

/** Every log line of the server, debug included, as the default logger would write it. */
const lines: Array<string> = []
const capture = Layer.merge(
  Logger.replace(Logger.defaultLogger, Logger.map(Logger.logfmtLogger, (line) => void lines.push(line))),
  Logger.minimumLogLevel(LogLevel.All)
)

const rows = Effect.flatMap(InMemoryStoreControl, (c) => c.rows)
const statusOf = (id: string) => Effect.map(rows, (all) => all.find((r) => r.id === id)?.status ?? "gone")

describe("POST /api/pool/self-destruct", () => {
  it.live("only the instance's own gateway token; its row goes to deleting, then key, inbox and service go; no token logged", () =>
    Effect.gen(function*() {
      const controller = yield* Controller
      const store = yield* InstanceStore
      yield* Effect.repeatN(controller.runPass, 1)
      // Gateway tokens as the Convos secrets issue them: 64 hex characters, one per instance.
      const [idle, claimed] = yield* rows
      const tokens = { [idle!.id]: "a1".repeat(32), [claimed!.id]: "b2".repeat(32) }
      for (const [id, gatewayToken] of Object.entries(tokens)) {
        yield* store.transition({ id, from: ["idle"], to: "idle", patch: { handles: { gatewayToken } } })
      }
      const claim = yield* call("POST", "/api/pool/claim", { body: {} })
      const claimedId = claim.json.instanceId as string
      const idleId = claimedId === idle!.id ? claimed!.id : idle!.id
      const before = yield* rows

      const refused = [null, KEY, "wrong-token", tokens[idleId]!.slice(0, 63), `${tokens[idleId]}0`, tokens[idleId]!.toUpperCase(), ""]
      for (const key of refused) {
        const answer = yield* call("POST", "/api/pool/self-destruct", { key })
        expect(answer.status, `token ${key}`).toBe(401)
      }
      // An instance's token opens nothing of the pool's API either.
      expect((yield* call("GET", "/api/pool/status", { key: tokens[idleId]! })).status).toBe(401)
      expect(yield* rows).toEqual(before)

      const asked = yield* call("POST", "/api/pool/self-destruct", { key: tokens[idleId]! })
      expect(asked).toMatchObject({ status: 200, json: { instanceId: idleId, status: "deleting" } })
      expect(yield* statusOf(idleId)).toBe("deleting")
      // Asked twice: the same answer.
      expect((yield* call("POST", "/api/pool/self-destruct", { key: tokens[idleId]! })).json).toEqual({ instanceId: idleId, status: "deleting" })
      // A claimed instance may leave too.
      expect((yield* call("POST", "/api/pool/self-destruct", { key: tokens[claimedId]! })).json).toEqual({ instanceId: claimedId, status: "deleting" })

      const name = (id: string) => before.find((r) => r.id === id)!.name
      expect(yield* Effect.flatMap(InMemoryCredentialsControl, (c) => c.live)).toEqual(expect.arrayContaining([name(idleId), name(claimedId)]))
      yield* controller.runPass
      expect(yield* statusOf(idleId)).toBe("gone")
      expect(yield* statusOf(claimedId)).toBe("gone")
      const live = yield* Effect.flatMap(InMemoryCredentialsControl, (c) => c.live)
      expect(live).not.toContain(name(idleId))
      expect(live).not.toContain(name(claimedId))
      const services = (yield* Effect.flatMap(InMemoryComputeControl, (c) => c.services)).map((s) => s.info.name)
      expect(services).not.toContain(name(idleId))
      // Gone: the token opens nothing any more.
      expect((yield* call("POST", "/api/pool/self-destruct", { key: tokens[idleId]! })).status).toBe(401)

      // The capture works (it has the server's lines), and none holds a token or the pool's key.
      expect(lines.some((line) => line.includes(`instance ${idleId} asked to be removed`))).toBe(true)
      for (const secret of [KEY, ...Object.values(tokens), "wrong-token"]) {
        expect(lines.filter((line) => line.includes(secret))).toEqual([])
      }
    }).pipe(Effect.provide(world("dev", spec).pipe(Layer.provide(capture)))))
})

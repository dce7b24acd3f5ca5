/**
 * The replaced system's instance calls and claims against two replicas of the built server in their own processes,
 * one Postgres, and the Railway, OpenRouter and registry emulators: what must hold across replicas does (twenty
 * top-ups split over both add exactly what they may; claims racing for one conversation, or retried with one
 * Idempotency-Key on both, take one instance), and an upgrade really changes the deployed image when its tag moved.
 */
import { existsSync } from "node:fs"
import { afterEach, describe, expect, it } from "vitest"
import { emulatedPlatform } from "./support/emulated-platform.js"
import { main, type ServerProcess, startServer, stop, until } from "./support/process.js"
import { startRegistryEmulator } from "./support/registry-emulator.js"

const API_KEY = "replaced-e2e-key"
const MANAGEMENT_KEY = "replaced-e2e-management"
const IMAGE = "ghcr.io/acme/agent:stable"

interface Row {
  readonly id: string
  readonly status: string
  readonly serviceId: string
  readonly gatewayToken: string
  readonly keyHash: string
}

const makeWorld = async () => {
  const platform = await emulatedPlatform({ databasePrefix: "warmpool_replaced", deployMs: 300, managementKey: MANAGEMENT_KEY })
  const registry = await platform.inScope(startRegistryEmulator)
  const servers: Array<ServerProcess> = []
  return {
    railway: platform.railway,
    openrouter: platform.openrouter,
    registry,
    servers,
    start: async () => {
      const server = await startServer({
        ...platform.env(API_KEY),
        RAILWAY_RUNTIME_IMAGE: IMAGE,
        IMAGE_REGISTRY_URL: registry.url,
        POOL_MIN_IDLE: "4",
        POOL_MAX_TOTAL: "12",
        TICK_INTERVAL_MS: "1000"
      })
      servers.push(server)
      await until("the server to answer", async () => ((await fetch(`${server.base}/healthz`)).ok ? true : undefined), 20_000)
      return server
    },
    rows: () =>
      platform.query<Row>(`SELECT id, status, service_id AS "serviceId", gateway_token AS "gatewayToken", openrouter_key_hash AS "keyHash" FROM instances ORDER BY created_at`),
    idempotencyKeys: () => platform.query<{ key: string; answered: boolean }>(`SELECT key, answer IS NOT NULL AS answered FROM warmpool_idempotent_claims`),
    close: async () => {
      for (const server of servers) await stop(server)
      await platform.close()
    },
    output: () => servers.map((s, i) => `--- server ${i} ---\n${s.output().slice(-2500)}`).join("\n")
  }
}

type World = Awaited<ReturnType<typeof makeWorld>>

const post = async (server: ServerProcess, path: string, body: object, headers: Record<string, string> = {}) => {
  const response = await fetch(`${server.base}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) })
  return { status: response.status, json: await response.json() as any }
}
const claim = (server: ServerProcess, body: object, headers: Record<string, string> = {}) =>
  post(server, "/api/pool/claim", body, { authorization: `Bearer ${API_KEY}`, ...headers })

let world: World | undefined
afterEach(async () => {
  await world?.close()
  world = undefined
})

describe.runIf(existsSync(main))("the replaced system's calls, on two replicas of the real server", () => {
  it("top-ups, conversations and Idempotency-Keys hold across replicas; self-upgrade deploys the moved tag's digest; self-reset redeploys", async () => {
    world = await makeWorld()
    const w = world
    try {
      const [a, b] = [await w.start(), await w.start()]
      const idle = await until("four idle instances", async () => {
        const rows = (await w.rows()).filter((r) => r.status === "idle" && r.gatewayToken !== null && r.keyHash !== null)
        return rows.length >= 4 ? rows : undefined
      }, 60_000)
      const servers = [a, b]
      const as = (row: Row) => ({ instanceId: row.id, gatewayToken: row.gatewayToken })

      // Twenty top-ups of one key, split over both replicas: 20 → 100 in exactly four steps.
      const target = idle[0]!
      const topUps = await Promise.all(Array.from({ length: 20 }, (_, i) => post(servers[i % 2]!, "/api/pool/credits-topup", as(target))))
      expect(topUps.filter((t) => t.status === 200).map((t) => [t.json.previousLimit, t.json.newLimit]).sort((x, y) => x[0] - y[0]))
        .toEqual([[20, 40], [40, 60], [60, 80], [80, 100]])
      for (const refused of topUps.filter((t) => t.status !== 200)) expect(refused).toEqual({ status: 409, json: { error: "Credit limit already at maximum", limit: 100, max: 100 } })
      const key = w.openrouter.keys().find((k) => k.hash === target.keyHash)!
      expect([key.limit, key.limitChanges]).toEqual([100, 4])
      expect((await post(b, "/api/pool/credits-check", as(target))).json).toEqual({ limit: 100, usage: 0, remaining: 100, limitReset: "monthly" })

      // One conversation, six claims at once over both replicas: one instance.
      const joinUrl = "https://dev.convos.org/v2?i=shared-room"
      const racing = await Promise.all(Array.from({ length: 6 }, (_, i) => claim(servers[i % 2]!, { joinUrl })))
      expect(racing.map((r) => r.status).sort()).toEqual([200, 409, 409, 409, 409, 409])

      // One Idempotency-Key sent to both replicas at once, then again: one instance, one answer.
      const before = (await w.rows()).filter((r) => r.status === "claimed").length
      const keyed = await Promise.all([a, b, a, b].map((s) => claim(s, { agentName: "once" }, { "idempotency-key": "e2e-key" })))
      expect(keyed[0]!.status).toBe(200)
      expect(new Set(keyed.map((k) => JSON.stringify(k))).size).toBe(1)
      expect(await claim(b, { agentName: "once" }, { "idempotency-key": "e2e-key" })).toEqual(keyed[0])
      expect((await w.rows()).filter((r) => r.status === "claimed").length).toBe(before + 1)
      // Kept in Postgres, where every replica (and a restarted one) finds it.
      expect(await w.idempotencyKeys()).toEqual([{ key: "e2e-key", answered: true }])

      // Self-info: the version the instance's runtime reported with its health (the emulator's: its image's tag).
      expect((await post(b, "/api/pool/self-info", as(target))).json).toEqual({
        ok: true,
        instanceId: target.id,
        runtimeVersion: "stable",
        runtimeImage: IMAGE,
        latestImage: IMAGE
      })

      // Self-upgrade: the tag moved twice; each upgrade deploys the digest it points to now.
      const mine = (await w.rows()).find((r) => r.id === keyed[0]!.json.instanceId)!
      const serviceOf = () => w.railway.services().find((s) => s.id === mine.serviceId)!
      for (const _ of [1, 2]) {
        const digest = w.registry.push("acme/agent", "stable")
        const upgraded = await post(a, "/api/pool/self-upgrade", as(mine))
        expect(upgraded).toMatchObject({ status: 200, json: { ok: true, instanceId: mine.id, image: IMAGE, digest } })
        expect(serviceOf().image).toBe(`ghcr.io/acme/agent@${digest}`)
      }
      const deployments = serviceOf().deployments.length
      expect(await post(b, "/api/pool/self-reset", as(mine))).toEqual({ status: 200, json: { ok: true, instanceId: mine.id } })
      expect(serviceOf().deployments.length).toBe(deployments + 1)
      expect(w.railway.operations()).toMatchObject({ ServiceInstanceRedeploy: 1 })

      // Self-destruct in the body form: answered, then the instance goes with its key.
      expect(await post(b, "/api/pool/self-destruct", as(mine))).toEqual({ status: 200, json: { ok: true } })
      await until("the instance and its key to go", async () =>
        !(await w.rows()).some((r) => r.id === mine.id) && !w.openrouter.keys().some((k) => k.hash === mine.keyHash) ? true : undefined, 30_000)
      for (const secret of [target.gatewayToken, mine.gatewayToken]) for (const server of servers) expect(server.output()).not.toContain(secret)
    } catch (error) {
      throw new Error(`${error instanceof Error ? error.message : String(error)}\n${w.output()}`)
    }
  }, 150_000)
})

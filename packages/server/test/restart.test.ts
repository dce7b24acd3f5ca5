/**
 * Restarts lose nothing and stall nothing (DESIGN rule 9), with the built server in its own processes against the
 * Railway and OpenRouter emulators. `serviceCreate` answers late, so creates are in flight when a server is
 * killed (SIGKILL: a crash, an OOM kill) or stopped (SIGTERM: every Railway redeploy); the next server — a
 * restart, or a standby replica — finishes what was left, and the pool is full again within seconds.
 */
import { existsSync } from "node:fs"
import { afterEach, describe, expect, it } from "vitest"
import { emulatedPlatform } from "./support/emulated-platform.js"
import { MANAGEMENT_KEY } from "./support/emulated-world.js"
import type { RailwayEmulatorOptions } from "@warmpool/providers-railway/emulator"
import { main, type ServerProcess, startServer, stop, until, within } from "./support/process.js"

const API_KEY = "restart-test-key"
const MIN_IDLE = 3

interface Row {
  readonly id: string
  readonly name: string
  readonly status: string
  readonly serviceId: string | null
  readonly lastError: string | null
}

/** A database, the emulators, and the servers started on them; all of it gone after each test. */
const makeWorld = async (railwayOptions: RailwayEmulatorOptions = {}) => {
  const platform = await emulatedPlatform({ databasePrefix: "warmpool_restart", deployMs: 1_000, managementKey: MANAGEMENT_KEY, railway: railwayOptions })
  const { railway, openrouter, query } = platform
  const servers: Array<ServerProcess> = []
  const env = (extra: Record<string, string>) => ({
    ...platform.env(API_KEY),
    POOL_MIN_IDLE: String(MIN_IDLE),
    POOL_MAX_TOTAL: "12",
    TICK_INTERVAL_MS: "1000",
    ...extra
  })
  const world = {
    railway,
    start: async (extra: Record<string, string> = {}) => {
      const server = await startServer(env(extra))
      servers.push(server)
      return server
    },
    rows: () => query<Row>(`SELECT id, name, status, service_id AS "serviceId", last_error AS "lastError" FROM instances ORDER BY created_at`),
    /** The lease's epoch: it moves whenever another server takes the lease. */
    epoch: async () => Number((await query<{ epoch: string }>(`SELECT epoch FROM warmpool_leases WHERE expires_at > now()`))[0]?.epoch ?? 0),
    /** Services = rows = keys, no name twice, no intent left, and at least MIN_IDLE idle; or what is still off. */
    whole: async (): Promise<string | undefined> => {
      const rows = await world.rows()
      const services = railway.services().map((s) => s.name).sort()
      const keys = openrouter.keys().map((k) => k.name).sort()
      const names = rows.map((r) => r.name).sort()
      const problems = [
        services.join() !== names.join() && `services ${services.length} ≠ rows ${names.length}`,
        keys.join() !== names.join() && `keys ${keys.length} ≠ rows ${names.length}`,
        new Set(services).size !== services.length && "a service name twice",
        rows.some((r) => ["creating", "claiming", "deleting"].includes(r.status)) && "intents left",
        rows.filter((r) => r.status === "idle").length < MIN_IDLE && "fewer than POOL_MIN_IDLE idle"
      ].filter((p): p is string => typeof p === "string")
      return problems.length === 0 ? undefined : problems.join(", ")
    },
    close: async () => {
      for (const server of servers) await stop(server)
      await platform.close()
    },
    output: () => servers.map((s, i) => `--- server ${i} ---\n${s.output().slice(-2500)}`).join("\n")
  }
  return world
}

type World = Awaited<ReturnType<typeof makeWorld>>

const claim = (server: ServerProcess, agentName: string) =>
  fetch(`${server.base}/api/pool/claim`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ agentName, instructions: "" })
  })

/** Waits until the pool is whole; returns how long it took from `since`. */
const wholeWithin = async (world: World, since: number, ms: number) => {
  let last: string | undefined = "not looked yet"
  await until("services = rows = keys and POOL_MIN_IDLE idle", async () => {
    last = await world.whole()
    return last === undefined ? true : undefined
  }, ms).catch((error) => {
    throw new Error(`${String(error)} (still: ${last})`)
  })
  return Date.now() - since
}

/** Fills the pool, then claims two instances at once, so that backfill creates are in flight (serviceCreate answering late). */
const createsInFlight = async (world: World, server: ServerProcess, delayMs: number) => {
  await wholeWithin(world, Date.now(), 45_000)
  world.railway.delayServiceCreate(delayMs)
  const claims = await Promise.all(["first", "second"].map((agent) => claim(server, agent)))
  expect(claims.map((c) => c.status)).toEqual([200, 200])
  // In flight: the platform has made the services, and its answer has not come back.
  return until("creates in flight", async () => {
    const creating = (await world.rows()).filter((r) => r.status === "creating")
    const made = new Set(world.railway.services().map((s) => s.name))
    return creating.length >= 1 && creating.every((r) => made.has(r.name)) ? creating : undefined
  }, 10_000)
}

let world: World | undefined
afterEach(async () => {
  await world?.close()
  world = undefined
})

/** Runs `body`, adding the servers' output to any failure. */
const withOutput = async (body: (world: World) => Promise<void>, railwayOptions: RailwayEmulatorOptions = {}) => {
  world = await makeWorld(railwayOptions)
  try {
    await body(world)
  } catch (error) {
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${world.output()}`)
  }
}

describe.runIf(existsSync(main))("restarts, with the real server against the Railway emulator", () => {
  it("SIGKILL mid-create, then a restart: the creates are finished, services = rows = keys, idle ≥ POOL_MIN_IDLE within 30 s of the lease", () =>
    withOutput(async (world) => {
      const first = await world.start()
      const inFlight = await createsInFlight(world, first, 60_000)
      const epoch = await world.epoch()
      first.child.kill("SIGKILL")
      await within("the killed server to exit", first.exited, 5_000)
      // What a crash leaves: rows in `creating`, their services made on the platform (never deployed), keys issued.
      const made = new Set(world.railway.services().map((s) => s.name))
      expect(inFlight.every((r) => made.has(r.name))).toBe(true)
      world.railway.delayServiceCreate(0)

      await world.start()
      // The killed server's lease runs out; the restarted one takes it.
      await until("the restarted server to take the lease", async () => ((await world.epoch()) > epoch ? true : undefined), 30_000)
      const took = Date.now()
      const elapsed = await wholeWithin(world, took, 30_000)
      console.log(`SIGKILL: whole ${elapsed} ms after the restarted server took the lease`)
      // The killed server's creates were finished, not thrown away and made again.
      const rows = await world.rows()
      for (const row of inFlight) expect(rows.find((r) => r.id === row.id)?.status).toMatch(/^(starting|idle)$/)
    }), 150_000)

  it("SIGKILL mid-projectCreate (a project per instance), then a restart: no project left behind, none twinned", () =>
    withOutput(async (world) => {
      const perInstance = { RAILWAY_PLACEMENT: "project-per-instance", RAILWAY_TEAM_ID: world.railway.workspaceId, RAILWAY_TOKEN_COOLDOWN_MS: "100" }
      const ours = () => world.railway.projects().filter((p) => p.name.startsWith("convos-agent-")).map((p) => p.name).sort()
      const first = await world.start(perInstance)
      await wholeWithin(world, Date.now(), 45_000)
      // The projects exist at once; their answers never come back to this server.
      world.railway.delayProjectCreate(60_000)
      const claims = await Promise.all(["first", "second"].map((agent) => claim(first, agent)))
      expect(claims.map((c) => c.status)).toEqual([200, 200])
      const inFlight = await until("projectCreate in flight", async () => {
        const creating = (await world.rows()).filter((r) => r.status === "creating")
        // One token: the second create waits for it while the first's project is in flight.
        const made = creating.filter((r) => ours().includes(r.name))
        return made.length >= 1 ? made : undefined
      }, 10_000)
      first.child.kill("SIGKILL")
      await within("the killed server to exit", first.exited, 5_000)
      world.railway.delayProjectCreate(0)

      await world.start(perInstance)
      await wholeWithin(world, Date.now(), 45_000)
      // Every project is an instance's, once: the half-made ones were finished (or removed), none made twice.
      const names = (await world.rows()).map((r) => r.name).sort()
      expect(ours()).toEqual(names)
      for (const row of inFlight) expect(names).toContain(row.name)
    }, { projectCreateEveryMs: 100 }), 150_000)

  it("SIGKILL with creates that land after the restart (late writes): each duplicate is removed, no name twice within 30 s, services = rows = keys", () =>
    withOutput(async (world) => {
      const first = await world.start()
      await wholeWithin(world, Date.now(), 45_000)
      // Railway carries the creates out 10 s after they arrive, whatever became of the server that sent them.
      world.railway.landServiceCreateLate(10_000)
      const claims = await Promise.all(["first", "second"].map((agent) => claim(first, agent)))
      expect(claims.map((c) => c.status)).toEqual([200, 200])
      const inFlight = await until("creates sent", async () => {
        const creating = (await world.rows()).filter((r) => r.status === "creating")
        return creating.length >= 1 ? creating : undefined
      }, 10_000)
      await new Promise((r) => setTimeout(r, 500))
      const epoch = await world.epoch()
      first.child.kill("SIGKILL")
      await within("the killed server to exit", first.exited, 5_000)
      const killed = Date.now()
      world.railway.landServiceCreateLate(0)

      await world.start()
      await until("the restarted server to take the lease", async () => ((await world.epoch()) > epoch ? true : undefined), 30_000)
      // The restart finishes the creates at once; the dead server's requests land afterwards, as second services.
      await until("the late creates to land", async () => (Date.now() - killed > 12_000 ? true : undefined), 20_000)
      const twins = world.railway.twinsLanded()
      const elapsed = await wholeWithin(world, killed, 30_000)
      console.log(`late creates: ${twins} duplicate(s) seen, whole ${elapsed} ms after the kill`)
      const names = world.railway.services().map((s) => s.name)
      expect(new Set(names).size).toBe(names.length)
      expect(twins).toBeGreaterThan(0)
      const rows = await world.rows()
      for (const row of inFlight) expect(rows.find((r) => r.id === row.id)?.status).toMatch(/^(starting|idle)$/)
    }), 150_000)

  it("SIGTERM mid-create and mid-claim: the server finishes both, answers new claims 503, exits 0 within the grace; the restart is whole within 15 s", () =>
    withOutput(async (world) => {
      const first = await world.start({ SHUTDOWN_GRACE_MS: "20000" })
      await createsInFlight(world, first, 3_000)
      // A claim whose instance takes 2 s to provision is under way too.
      world.railway.delayProvision(2_000)
      const provisioning = claim(first, "in-flight")
      await until("a claim in flight", async () => (await world.rows()).find((r) => r.status === "claiming"), 10_000)
      const stopped = Date.now()
      first.child.kill("SIGTERM")
      // While it drains, a claim is refused with a time to come back, not left hanging.
      await new Promise((r) => setTimeout(r, 300))
      const refused = await within("a claim while stopping", claim(first, "during-stop"), 5_000)
      expect(refused.status).toBe(503)
      expect(refused.headers.get("retry-after")).toBe("5")
      expect((await within("the claim in flight", provisioning, 20_000)).status).toBe(200)
      expect(await within("the stopped server to exit", first.exited, 25_000)).toBe(0)
      expect(Date.now() - stopped).toBeLessThan(20_000)
      // Nothing half-done that it could have finished: its creates are recorded, no intent is left.
      const rows = await world.rows()
      expect(rows.filter((r) => ["creating", "claiming", "deleting"].includes(r.status))).toEqual([])
      world.railway.delayProvision(0)
      expect(rows.every((r) => r.serviceId !== null)).toBe(true)

      const restarted = Date.now()
      await world.start()
      const elapsed = await wholeWithin(world, restarted, 15_000)
      console.log(`SIGTERM: whole ${elapsed} ms after the restart`)
    }), 150_000)

  it("two replicas: the leader killed mid-create and mid-claim, the standby takes over and resolves; then a SIGTERM hands over at once", () =>
    withOutput(async (world) => {
      const leader = await world.start()
      await until("the first server to lead", async () => ((await world.epoch()) > 0 ? true : undefined), 20_000)
      const standby = await world.start()
      const inFlight = await createsInFlight(world, leader, 60_000)
      // And a claim in flight on the leader: the instance is provisioning when the process dies.
      world.railway.delayProvision(60_000)
      claim(leader, "cut-short").catch(() => undefined)
      const claiming = await until("a claim in flight", async () => (await world.rows()).find((r) => r.status === "claiming"), 10_000)
      const epoch = await world.epoch()
      leader.child.kill("SIGKILL")
      await within("the killed leader to exit", leader.exited, 5_000)
      world.railway.delayServiceCreate(0)
      world.railway.delayProvision(0)
      await until("the standby to take the lease", async () => ((await world.epoch()) > epoch ? true : undefined), 30_000)
      const elapsed = await wholeWithin(world, Date.now(), 30_000)
      console.log(`two replicas, SIGKILL: whole ${elapsed} ms after the standby took the lease`)
      const rows = await world.rows()
      for (const row of inFlight) expect(rows.find((r) => r.id === row.id)?.status).toMatch(/^(starting|idle)$/)
      // The dead leader's claim has an unknown outcome: crashed at once (not after the 2-minute claim timeout).
      expect(rows.find((r) => r.id === claiming.id)).toMatchObject({ status: "crashed", lastError: "crashed: claim-abandoned" })

      // A redeploy of the new leader: a new standby is up, the leader gets SIGTERM and hands over at once.
      await world.start()
      const more = await createsInFlight(world, standby, 3_000)
      const handedAt = await world.epoch()
      const stopped = Date.now()
      standby.child.kill("SIGTERM")
      expect(await within("the stopped leader to exit", standby.exited, 25_000)).toBe(0)
      await until("the new standby to take the lease", async () => ((await world.epoch()) > handedAt ? true : undefined), 10_000)
      await wholeWithin(world, stopped, 15_000)
      const after = await world.rows()
      for (const row of more) expect(after.find((r) => r.id === row.id)?.status).toMatch(/^(starting|idle)$/)
    }), 200_000)
})

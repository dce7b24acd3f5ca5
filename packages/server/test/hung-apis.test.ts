/**
 * APIs that hang (issue 21 §3), with the built server in its own process: Railway's API, OpenRouter, AgentMail and
 * the instances' runtime accept requests and never answer them. Claims arrive throughout; each is answered within
 * its bound, a claim whose provision hangs crashes its instance, passes go on, and the pool is whole once the
 * fault ends.
 */
import { startAgentMailEmulator } from "@warmpool/providers-agentmail/emulator"
import { existsSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { closedAfterEach } from "./support/closed-after-each.js"
import { emulatedPlatform } from "./support/emulated-platform.js"
import { main, type ServerProcess, sleep, startServer, stop, timedFetch, until } from "./support/process.js"

const API_KEY = "hung-apis-test-key"
const MANAGEMENT_KEY = "hung-apis-management-key"
const AGENTMAIL_KEY = "hung-apis-agentmail-key"
const MIN_IDLE = 3
const PROVISION_TIMEOUT_MS = 3_000
const HANG = { _tag: "Hang" } as const

interface Answer {
  readonly ms: number
  readonly status: number
  readonly body: { readonly instanceId?: string; readonly message?: string } | undefined
}

const makeWorld = async () => {
  const platform = await emulatedPlatform({ databasePrefix: "warmpool_hung", deployMs: 300, managementKey: MANAGEMENT_KEY })
  const agentmail = await platform.inScope(startAgentMailEmulator({ apiKey: AGENTMAIL_KEY }))
  let server: ServerProcess | undefined
  const close = async () => {
    await stop(server)
    await platform.close()
  }
  try {
    server = await startServer({
      ...platform.env(API_KEY),
      AGENTMAIL_API_KEY: AGENTMAIL_KEY,
      AGENTMAIL_API_URL: agentmail.apiUrl,
      POOL_MIN_IDLE: String(MIN_IDLE),
      POOL_MAX_TOTAL: "20",
      TICK_INTERVAL_MS: "1000",
      RAILWAY_TIMEOUT: "2 seconds",
      POOL_PROVISION_TIMEOUT_MS: String(PROVISION_TIMEOUT_MS)
    })
  } catch (error) {
    await close()
    throw error
  }
  const base = server.base
  const timed = async (path: string, init: RequestInit = {}): Promise<Answer> => {
    const { body, ms, status } = await timedFetch(`${base}${path}`, init)
    return { ms, status, body: body as Answer["body"] }
  }
  let claims = 0
  const rows = () => platform.query<{ id: string; name: string; status: string }>(`SELECT id, name, status FROM instances`)
  return {
    platform,
    agentmail,
    server,
    close,
    rows,
    claim: () =>
      timed("/api/pool/claim", {
        method: "POST",
        headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ agentName: `agent-${claims++}`, instructions: "" })
      }),
    health: () => timed("/healthz"),
    /** Passes the server has finished, whatever their outcome. */
    passes: async () => {
      const text = await (await fetch(`${base}/metrics`)).text()
      return [...text.matchAll(/^warmpool_passes_total\{[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0)
    },
    /** Idle ≥ POOL_MIN_IDLE, nothing half-done, and services = rows = OpenRouter keys = inboxes (crashed rows stay until dismissed). */
    whole: async () => {
      const now = await rows()
      const names = now.map((r) => r.name).sort().join()
      const services = platform.railway.services().map((s) => s.name).sort().join()
      const keys = platform.openrouter.keys().map((k) => k.name).sort().join()
      const idle = now.filter((r) => r.status === "idle").length
      const settled = !now.some((r) => ["creating", "deleting", "claiming"].includes(r.status))
      return names === services && names === keys && agentmail.inboxes().length === now.length && idle >= MIN_IDLE && settled
        ? true
        : undefined
    }
  }
}

type World = Awaited<ReturnType<typeof makeWorld>>
const opened = closedAfterEach<World>()

/** While `ms` pass: a claim and a health check every second. Answers every claim; the slowest health check. */
const claimsDuring = async (w: World, ms: number) => {
  const started = Date.now()
  const claims: Array<Promise<Answer>> = []
  const healths: Array<Promise<Answer>> = []
  while (Date.now() - started < ms) {
    claims.push(w.claim())
    healths.push(w.health())
    await sleep(1_000)
  }
  return { claims: await Promise.all(claims), slowestHealth: Math.max(...(await Promise.all(healths)).map((h) => h.ms)) }
}

describe.runIf(existsSync(main))("APIs that hang, with the real server", () => {
  it("a hung provision, Railway, OpenRouter and AgentMail: every claim answered in bound, the hung instance crashed, passes go on, the pool whole after", async () => {
    const w = opened(await makeWorld())
    const { railway, openrouter } = w.platform
    try {
      await until("the pool to fill", w.whole, 60_000)

      // 1. The runtime takes the claim's request and never answers: 502 within the provision timeout, not three
      //    times it; the instance is crashed (never idle again), and the next claim is served once it answers.
      railway.hangRuntime("/pool/provision")
      const idleBefore = new Set((await w.rows()).filter((r) => r.status === "idle").map((r) => r.id))
      const hung = await w.claim()
      expect(hung.status, JSON.stringify(hung.body)).toBe(502)
      expect(hung.ms).toBeGreaterThanOrEqual(PROVISION_TIMEOUT_MS - 100)
      expect(hung.ms).toBeLessThan(PROVISION_TIMEOUT_MS + 2_000)
      expect(hung.body?.message).toMatch(/no answer within/)
      const taken = (await w.rows()).filter((r) => idleBefore.has(r.id) && r.status !== "idle")
      expect(taken.map((r) => r.status)).toEqual(["crashed"])
      railway.restore()
      const served = await w.claim()
      expect(served.status).toBe(200)
      expect(served.body?.instanceId).not.toBe(taken[0]!.id)
      // The crashed one is replaced and stays crashed (an operator dismisses it), never handed out again.
      await until("the pool whole after the hung provision", w.whole, 60_000)
      expect((await w.rows()).find((r) => r.id === taken[0]!.id)?.status).toBe("crashed")

      // 2. Railway's API accepts and never answers: claims are served from the idle pool in well under a second,
      //    /healthz answers, and passes end (failed, after RAILWAY_TIMEOUT) instead of waiting forever.
      railway.inject(HANG, { times: Number.POSITIVE_INFINITY })
      const passesBefore = await w.passes()
      const railwayHung = await claimsDuring(w, 8_000)
      const passesDuring = (await w.passes()) - passesBefore
      railway.restore()
      console.log(`Railway hung 8 s: ${passesDuring} passes ended; claims ${railwayHung.claims.map((c) => `${c.status}/${c.ms}ms`).join(" ")}`)
      expect(passesDuring).toBeGreaterThanOrEqual(2)
      expect(railwayHung.slowestHealth).toBeLessThan(1_000)
      for (const answer of railwayHung.claims) {
        expect([200, 503]).toContain(answer.status)
        expect(answer.ms).toBeLessThan(2_000)
      }
      expect(railwayHung.claims.filter((c) => c.status === 200).length).toBeGreaterThanOrEqual(MIN_IDLE)
      await until("the pool whole after Railway answers again", w.whole, 60_000)

      // 3. OpenRouter and AgentMail accept and never answer: new instances cannot get their key and inbox, so the
      //    pool runs down, but claims are answered at once (served or 503), and it refills once they answer again.
      openrouter.inject(HANG, { times: Number.POSITIVE_INFINITY })
      w.agentmail.inject(HANG, { times: Number.POSITIVE_INFINITY })
      const credentialsHung = await claimsDuring(w, 6_000)
      openrouter.restore()
      w.agentmail.restore()
      for (const answer of credentialsHung.claims) {
        expect([200, 503]).toContain(answer.status)
        expect(answer.ms).toBeLessThan(2_000)
      }
      expect(credentialsHung.slowestHealth).toBeLessThan(1_000)
      // A create whose key request hung is finished by a later pass: the key calls have a 15 s deadline.
      await until("the pool whole after OpenRouter and AgentMail answer again", w.whole, 60_000)
    } catch (error) {
      throw new Error(`${error instanceof Error ? error.message : String(error)}\n${w.server.output().slice(-4000)}`)
    }
  }, 240_000)
})

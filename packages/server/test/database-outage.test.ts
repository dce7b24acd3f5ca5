/**
 * A database that goes away (issue 21 §2), with the built server in its own process against the Railway and
 * OpenRouter emulators and the real Postgres behind a TCP fault proxy: a restart (every connection reset, new
 * ones refused) and a partition (bytes stop, connections stay open), with claims arriving throughout.
 */
import { startTcpFaultProxy } from "@warmpool/reconciler/testing"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Effect, Exit, Redacted, Scope } from "effect"
import { existsSync } from "node:fs"
import { describe, expect, inject, it } from "vitest"
import { closedAfterEach } from "./support/closed-after-each.js"
import { emulators, freshDatabase, serverEnv } from "./support/emulated-world.js"
import { main, sleep, startServer, stop, timedFetch, until } from "./support/process.js"

const API_KEY = "outage-test-key"
const MIN_IDLE = 6

interface Answer {
  readonly sentAt: number
  readonly ms: number
  readonly status: number
  readonly retryAfter: string | null
  readonly body: { readonly instanceId?: string; readonly _tag?: string; readonly message?: string } | undefined
}

const makeWorld = async () => {
  const scope = Effect.runSync(Scope.make())
  const inScope = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Scope.extend(effect, scope))
  const url = await inScope(freshDatabase(inject("postgresUrl"), "warmpool_outage"))
  const target = new URL(url)
  const proxy = await inScope(startTcpFaultProxy({ host: target.hostname, port: Number(target.port || 5432) }))
  const emulated = await inScope(emulators(500))
  const { openrouter, railway } = emulated
  const server = await startServer(serverEnv({ databaseUrl: proxy.via(url), apiKey: API_KEY, emulators: emulated, minIdle: MIN_IDLE, maxTotal: 40 }))
  // Straight to Postgres, around the proxy: what the test reads is never faulted.
  const query = <A extends object>(text: string) =>
    Effect.runPromise(
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<A>(text)).pipe(
        Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })),
        Effect.scoped
      )
    )
  const answers: Array<Answer> = []
  const claim = async (): Promise<Answer> => {
    const { body, headers, ms, sentAt, status } = await timedFetch(`${server.base}/api/pool/claim`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ agentName: `agent-${answers.length}`, instructions: "" })
    })
    const answer = { sentAt, ms, status, retryAfter: headers.get("retry-after"), body: body as Answer["body"] }
    answers.push(answer)
    return answer
  }
  const health = async () => {
    const sentAt = Date.now()
    const response = await fetch(`${server.base}/healthz`, { signal: AbortSignal.timeout(10_000) })
    return { ms: Date.now() - sentAt, status: response.status, body: await response.json() as { status?: string } }
  }
  return {
    proxy,
    server,
    answers,
    claim,
    health,
    rows: () => query<{ id: string; name: string; status: string }>(`SELECT id, name, status FROM instances`),
    idle: async () => (await query<{ id: string }>(`SELECT id FROM instances WHERE status = 'idle'`)).length,
    services: () => railway.services().map((s) => s.name).sort(),
    keys: () => openrouter.keys().map((k) => k.name).sort(),
    close: async () => {
      await stop(server)
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }
}

type World = Awaited<ReturnType<typeof makeWorld>>
const opened = closedAfterEach<World>()

/**
 * Claims every `everyMs` while `fault` lasts `faultMs`; /healthz asked throughout. Returns when the fault
 * ended and the first claim that succeeded after it.
 */
const through = async (w: World, fault: Effect.Effect<void>, faultMs: number) => {
  const healths: Array<Awaited<ReturnType<World["health"]>>> = []
  const inFlight: Array<Promise<unknown>> = []
  await Effect.runPromise(fault)
  const faultStart = Date.now()
  while (Date.now() - faultStart < faultMs) {
    inFlight.push(w.claim().catch(() => undefined))
    inFlight.push(w.health().then((h) => healths.push(h)).catch(() => undefined))
    await sleep(700)
  }
  await Effect.runPromise(w.proxy.restore)
  const restored = Date.now()
  // After the fault: claims go on until one succeeds. The first claim answered 200 after the end, whenever it was
  // sent (those waiting at the end are served first), says when claims succeed again.
  const servedAfter = () => w.answers.filter((a) => a.status === 200 && a.sentAt + a.ms >= restored).map((a) => a.sentAt + a.ms - restored)
  while (servedAfter().length === 0 && Date.now() - restored < 20_000) {
    inFlight.push(w.claim())
    await sleep(250)
  }
  await Promise.all(inFlight)
  const firstSuccess = Math.min(...servedAfter())
  return { faultStart, restored, firstSuccess, healths }
}

describe.runIf(existsSync(main))("a database that goes away, with the real server", () => {
  it("restart and partition: every claim answered within 10 s (503 + Retry-After + JSON while down), /healthz degraded without blocking, claims back within 3 s, nothing handed out twice", async () => {
    const w = opened(await makeWorld())
    try {
      await until("the pool to fill", async () => ((await w.idle()) >= MIN_IDLE ? true : undefined), 60_000)

      const reset = await through(w, w.proxy.reset, 12_000)
      await until("the pool to refill", async () => ((await w.idle()) >= MIN_IDLE ? true : undefined), 30_000)
      const partition = await through(w, w.proxy.blackhole, 14_000)
      console.log(`reset: first claim ${reset.firstSuccess} ms after; partition: ${partition.firstSuccess} ms after; slowest answer ${Math.max(...w.answers.map((a) => a.ms))} ms`)

      for (const answer of w.answers) {
        expect(answer.ms, `a claim answered ${answer.status} after ${answer.ms} ms`).toBeLessThanOrEqual(10_000)
        expect([200, 503]).toContain(answer.status)
        expect(answer.body, "a JSON body").toBeDefined()
        if (answer.status === 503) expect(answer.retryAfter).toBe("5")
      }
      // Claims during each fault were refused, not served from nowhere.
      for (const run of [reset, partition]) {
        // Sent once the fault was seen, and given up before it ended (a claim sent just before the end may be served).
        const during = w.answers.filter((a) => a.sentAt >= run.faultStart + 2_000 && a.sentAt + 7_000 < run.restored)
        expect(during.length).toBeGreaterThanOrEqual(2)
        expect(during.map((a) => a.status), JSON.stringify(during.map((a) => [a.sentAt - run.faultStart, a.status, a.ms, a.body?.message]))).toEqual(during.map(() => 503))
        // /healthz: degraded while down, and never waiting for the database.
        for (const h of run.healths) expect(h.ms).toBeLessThan(2_000)
        expect(run.healths.map((h) => h.body.status)).toContain("degraded")
        expect(run.firstSuccess).toBeLessThanOrEqual(3_000)
      }
      // No instance handed out twice; each one handed out is claimed.
      const served = w.answers.filter((a) => a.status === 200).map((a) => a.body!.instanceId!)
      expect(new Set(served).size).toBe(served.length)
      const rows = await w.rows()
      for (const id of served) expect(rows.find((r) => r.id === id)?.status).toBe("claimed")
      // /healthz is healthy again within its probe's interval (a probe in flight when the partition ended may still fail).
      const healthy = await until("/healthz healthy again", async () => ((await w.health()).status === 200 ? Date.now() : undefined), 10_000)
      expect(healthy - partition.restored).toBeLessThanOrEqual(3_000)

      // The world is consistent again: the pool refills, services = rows = keys, no intent left behind.
      let still = ""
      await until("the pool whole again", async () => {
        const now = await w.rows()
        const names = now.map((r) => r.name).sort().join()
        still = JSON.stringify({ rows: now.length, services: w.services().length, keys: w.keys().length, statuses: now.map((r) => r.status).sort() })
        const whole = names === w.services().join() && names === w.keys().join() && now.filter((r) => r.status === "idle").length >= MIN_IDLE &&
          !now.some((r) => ["creating", "deleting", "claiming"].includes(r.status))
        return whole ? true : undefined
      }, 60_000).catch((error) => {
        throw new Error(`${String(error)}: ${still}`)
      })
    } catch (error) {
      throw new Error(`${error instanceof Error ? error.message : String(error)}\n${w.server.output().slice(-4000)}`)
    }
  }, 180_000)
})

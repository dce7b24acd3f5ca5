/**
 * Faults at the edges (issue 21), the built server in its own process against the Railway and OpenRouter
 * emulators and the real Postgres behind a TCP fault proxy:
 * - `chaos.pg_partition.max_claim_answer.ms`: the slowest answer to a claim sent during a 30 s partition (bytes
 *   stop, connections stay open), one claim a second (target ≤ 10,000).
 * - `chaos.pg_restart.first_claim_after.ms`: a 15 s restart (connections reset, new ones refused); from its end to
 *   the first claim answered 200 (target ≤ 3,000).
 * - `chaos.late_create.duplicates_after_30s`: SIGKILL with creates in flight that Railway carries out 10 s later,
 *   after the restart has finished their rows; services sharing a name 30 s after the kill (target 0).
 */
import { testServer } from "@warmpool/reconciler-pg/testing"
import { startTcpFaultProxy } from "@warmpool/reconciler/testing"
import { Effect, Exit, Scope } from "effect"
import { emulators, freshDatabase, serverEnv } from "../test/support/emulated-world.js"
import { type ServerProcess, startServer, stop, until } from "../test/support/process.js"

const API_KEY = "chaos-bench-key"
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms))

const world = async (scope: Scope.CloseableScope) => {
  const inScope = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Scope.extend(effect, scope))
  const url = await inScope(Effect.flatMap(testServer, (server) => freshDatabase(server.url, "warmpool_chaos")))
  const target = new URL(url)
  const proxy = await inScope(startTcpFaultProxy({ host: target.hostname, port: Number(target.port || 5432) }))
  const emulated = await inScope(emulators(500))
  const servers: Array<ServerProcess> = []
  const start = async () => {
    const started = await startServer(serverEnv({ databaseUrl: proxy.via(url), apiKey: API_KEY, emulators: emulated, minIdle: 4, maxTotal: 40 }))
    servers.push(started)
    return started
  }
  const claim = async (server: ServerProcess) => {
    const sentAt = Date.now()
    const response = await fetch(`${server.base}/api/pool/claim`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ agentName: "chaos", instructions: "" })
    }).catch(() => undefined)
    await response?.text()
    return { sentAt, answeredAt: Date.now(), status: response?.status ?? 0 }
  }
  const idle = async (server: ServerProcess) => {
    const response = await fetch(`${server.base}/api/pool/counts`).catch(() => undefined)
    return response?.ok ? ((await response.json()) as { idle: number }).idle : 0
  }
  const filled = (server: ServerProcess) => until("the pool to fill", async () => ((await idle(server)) >= 4 ? true : undefined), 60_000)
  return { proxy, railway: emulated.railway, start, claim, filled, servers }
}

export const run = async (): Promise<Record<string, number>> => {
  const scope = Effect.runSync(Scope.make())
  const w = await world(scope)
  try {
    const server = await w.start()
    await w.filled(server)

    // A 30 s partition, a claim a second.
    await Effect.runPromise(w.proxy.blackhole)
    const partitionStart = Date.now()
    const during: Array<Promise<{ sentAt: number; answeredAt: number; status: number }>> = []
    while (Date.now() - partitionStart < 30_000) {
      during.push(w.claim(server))
      await sleep(1_000)
    }
    await Effect.runPromise(w.proxy.restore)
    const maxAnswer = Math.max(...(await Promise.all(during)).map((a) => a.answeredAt - a.sentAt))
    await w.filled(server)

    // A 15 s restart; then claims until one is served.
    await Effect.runPromise(w.proxy.reset)
    await sleep(15_000)
    await Effect.runPromise(w.proxy.restore)
    const restored = Date.now()
    let firstAfter = Number.POSITIVE_INFINITY
    const after: Array<Promise<unknown>> = []
    while (!Number.isFinite(firstAfter) && Date.now() - restored < 30_000) {
      after.push(w.claim(server).then((a) => {
        if (a.status === 200) firstAfter = Math.min(firstAfter, a.answeredAt - restored)
      }))
      await sleep(200)
    }
    await Promise.all(after)
    await w.filled(server)

    // Creates that land after a SIGKILL and the restart.
    w.railway.landServiceCreateLate(10_000)
    await Promise.all([w.claim(server), w.claim(server)])
    await sleep(1_000)
    server.child.kill("SIGKILL")
    await server.exited
    const killed = Date.now()
    w.railway.landServiceCreateLate(0)
    await w.start()
    await sleep(Math.max(0, 30_000 - (Date.now() - killed)))
    const names = w.railway.services().map((s) => s.name)

    return {
      "chaos.pg_partition.max_claim_answer.ms": maxAnswer,
      "chaos.pg_restart.first_claim_after.ms": firstAfter,
      "chaos.late_create.duplicates_after_30s": names.length - new Set(names).size
    }
  } finally {
    for (const server of w.servers) await stop(server)
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

import { expect, it } from "@effect/vitest"
import { isAlive } from "@warmpool/providers-local"
import { InstanceStore, type StatusCounts } from "@warmpool/reconciler"
import { Effect, Option, Redacted, Schedule } from "effect"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SandboxPool, SandboxPoolLive, spec } from "../src/pool.js"

const counts = Effect.flatMap(InstanceStore, (store) => store.counts(spec.name))
/** The counts once `done` holds (up to 20 s). */
const until = (done: (counts: StatusCounts) => boolean) =>
  counts.pipe(Effect.filterOrFail(done), Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("20 seconds"))))

const run = (endpoint: string, token: string, code: string) =>
  Effect.promise(async () => {
    const response = await fetch(endpoint, { method: "POST", headers: { authorization: `Bearer ${token}` }, body: code })
    return [response.status, await response.json()] as const
  })

it.live("a pool of warm sandboxes on local processes: fills, refuses a bad claim, serves a typed one, backfills", () =>
  Effect.gen(function*() {
    const dataDir = mkdtempSync(join(tmpdir(), "sandbox-pool-"))
    const pids = yield* Effect.gen(function*() {
      const pool = yield* SandboxPool
      yield* until((c) => c.idle === 2)

      // Refused by the runtime's schema before anything is taken.
      const refused = yield* Effect.flip(pool.claim({ owner: "Ada Lovelace", ttlSeconds: 600 }))
      expect(refused._tag).toBe("InvalidClaimError")
      expect(yield* counts).toMatchObject({ idle: 2, claiming: 0, claimed: 0 })

      const before = Date.now()
      const { result, instance } = yield* pool.claim({ owner: "ada", ttlSeconds: 600 })
      expect(instance.status).toBe("claimed")
      expect(result.endpoint).toBe(`${instance.url}/run`)
      expect(result.expiresAt.getTime() - before).toBeGreaterThanOrEqual(600_000)
      expect(result.expiresAt.getTime() - before).toBeLessThan(610_000)
      const row = Option.getOrThrow(yield* Effect.flatMap(InstanceStore, (store) => store.get(instance.id)))
      expect(row.status).toBe("claimed")
      expect(row.attributes).toEqual({ owner: "ada", expiresAt: result.expiresAt.toISOString() })

      // The session: its token runs code in the warm context (state kept between runs), no other token does.
      const token = Redacted.value(result.token)
      expect(String(result.token)).not.toContain(token)
      expect(yield* run(result.endpoint, token, "const xs = [1, 2, 3, 6]; mean(xs)")).toEqual([200, { value: 3 }])
      expect(yield* run(result.endpoint, token, "sum(xs)")).toEqual([200, { value: 12 }])
      expect((yield* run(result.endpoint, `${token}x`, "1"))[0]).toBe(401)

      // The claim triggered a backfill: two idle again beside the claimed one.
      expect(yield* until((c) => c.idle === 2 && c.claimed === 1)).toMatchObject({ idle: 2, claimed: 1, crashed: 0 })
      return (JSON.parse(readFileSync(join(dataDir, "local-services.json"), "utf8")) as Array<{ pid: number }>).map((s) => s.pid)
    }).pipe(Effect.provide(SandboxPoolLive({ dataDir, warmUpMs: 300 })), Effect.scoped)
    expect(pids).toHaveLength(3)
    expect(pids.filter(isAlive)).toEqual([]) // every sandbox stopped with the pool
  }), 60_000)

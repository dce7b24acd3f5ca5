/**
 * The `InstanceStore` contract, as tests any implementation must pass (in-memory, Postgres, yours).
 * Call it from a test file with a Layer that gives a fresh, empty store for the suite.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { type InstanceStatus, newInstance } from "../../domain/instance.js"
import { InstanceStore } from "../../services.js"

export interface InstanceStoreConformanceOptions {
  /** Concurrent claims in the race test. Default 50 over 20 idle rows. */
  readonly claimers?: number
}

let sequence = 0
/** Rows unique across the whole suite, so tests may share one store. */
const uniquePool = () => `conf-${Date.now().toString(36)}-${(sequence++).toString(36)}`

const row = (pool: string, id: string, status: InstanceStatus, ageSeconds = 0, serviceId: string | null = null) =>
  newInstance({
    id: `${pool}-${id}`,
    pool,
    name: `agent-${pool}-${id}`,
    status,
    serviceId,
    now: new Date(Date.UTC(2026, 0, 1) - ageSeconds * 1000)
  })

export const instanceStoreConformance = <E>(
  name: string,
  layer: Layer.Layer<InstanceStore, E>,
  options: InstanceStoreConformanceOptions = {}
) =>
  describe(`InstanceStore conformance: ${name}`, () => {
    it.layer(layer, { timeout: 60_000 })((it) => {
      it.effect("inserts, gets and lists rows of one pool, oldest first, with every field kept", () =>
        Effect.gen(function*() {
          const store = yield* InstanceStore
          const pool = uniquePool()
          const young = row(pool, "young", "idle", 10, `svc-${pool}-y`)
          const old = newInstance({
            ...row(pool, "old", "claimed", 100, `svc-${pool}-o`),
            url: "https://old.example",
            deployStatus: "SUCCESS",
            claimedAt: new Date(Date.UTC(2026, 0, 1)),
            runtimeImage: "img:1",
            handles: { keyHash: "hash", inbox: "inbox@x" },
            attributes: { session: "s-1", "with space": "a \"quoted\" value" },
            lastError: "none",
            now: new Date(Date.UTC(2026, 0, 1) - 100_000)
          })
          yield* store.insert(young)
          yield* store.insert(old)
          yield* store.insert(row(uniquePool(), "elsewhere", "idle"))
          const listed = yield* store.list(pool)
          expect(listed.map((r) => r.id)).toEqual([old.id, young.id])
          expect(listed[0]).toEqual(old)
          expect(yield* store.get(young.id)).toEqual(Option.some(young))
          expect(yield* store.get(`${pool}-missing`)).toEqual(Option.none())
        }))

      it.effect("refuses a second row with the same id, name or service id", () =>
        Effect.gen(function*() {
          const store = yield* InstanceStore
          const pool = uniquePool()
          const first = row(pool, "a", "idle", 0, `svc-${pool}-a`)
          yield* store.insert(first)
          const sameId = yield* Effect.flip(store.insert(newInstance({ ...first, name: "other-name", serviceId: null, now: first.createdAt })))
          const sameName = yield* Effect.flip(store.insert(newInstance({ ...first, id: `${pool}-b`, serviceId: null, now: first.createdAt })))
          const sameService = yield* Effect.flip(store.insert(newInstance({ ...first, id: `${pool}-c`, name: `n-${pool}-c`, now: first.createdAt })))
          expect([sameId._tag, sameName._tag, sameService._tag]).toEqual(["ConflictError", "ConflictError", "ConflictError"])
          expect((yield* store.list(pool)).length).toBe(1)
        }))

      it.effect("transition is a compare-and-set: applied from an expected status, stale otherwise", () =>
        Effect.gen(function*() {
          const store = yield* InstanceStore
          const pool = uniquePool()
          const r = row(pool, "a", "starting", 60)
          yield* store.insert(r)
          const idle = yield* store.transition({ id: r.id, from: ["starting"], to: "idle", patch: { deployStatus: "SUCCESS" } })
          expect(idle.status).toBe("idle")
          expect(idle.deployStatus).toBe("SUCCESS")
          expect(idle.statusChangedAt).not.toEqual(r.statusChangedAt)
          const stale = yield* Effect.flip(store.transition({ id: r.id, from: ["starting"], to: "crashed" }))
          expect(stale._tag).toBe("StaleStatusError")
          const missing = yield* Effect.flip(store.transition({ id: `${pool}-nope`, from: ["idle"], to: "crashed" }))
          expect(missing._tag).toBe("StaleStatusError")
          // A patch without a status change keeps status_changed_at.
          const patched = yield* store.transition({ id: r.id, from: ["idle"], to: "idle", patch: { url: "https://x" } })
          expect(patched.statusChangedAt).toEqual(idle.statusChangedAt)
          expect(patched.url).toBe("https://x")
          expect((yield* store.get(r.id)).pipe(Option.map((x) => x.status))).toEqual(Option.some("idle"))
        }))

      it.effect("handles and attributes are merged by a patch: the keys given are set, the others kept", () =>
        Effect.gen(function*() {
          const store = yield* InstanceStore
          const pool = uniquePool()
          const [a, b] = ["a", "b"].map((id) => newInstance({ ...row(pool, id, "creating"), handles: { first: "1" }, now: new Date() }))
          yield* store.insert(a!)
          yield* store.insert(b!)
          const one = yield* store.transition({ id: a!.id, from: ["creating"], to: "creating", patch: { handles: { second: "2", first: "one" } } })
          expect(one.handles).toEqual({ first: "one", second: "2" })
          // Batched, each row with its own values; attributes start empty.
          const applied = yield* store.transitionMany([
            { id: a!.id, from: ["creating"], to: "claimed", patch: { attributes: { session: "sa" }, claimedAt: new Date(Date.UTC(2026, 1, 1)) } },
            { id: b!.id, from: ["creating"], to: "claimed", patch: { attributes: { session: "sb" }, claimedAt: new Date(Date.UTC(2026, 1, 2)) } }
          ])
          expect([...applied].sort()).toEqual([a!.id, b!.id].sort())
          const after = yield* store.list(pool)
          expect(after.map((r) => [r.handles, r.attributes, r.claimedAt?.toISOString()])).toEqual([
            [{ first: "one", second: "2" }, { session: "sa" }, "2026-02-01T00:00:00.000Z"],
            [{ first: "1" }, { session: "sb" }, "2026-02-02T00:00:00.000Z"]
          ])
        }))

      it.effect("transitionMany applies the compare-and-sets that match and returns their ids", () =>
        Effect.gen(function*() {
          const store = yield* InstanceStore
          const pool = uniquePool()
          const rows = ["a", "b", "c"].map((id) => row(pool, id, "starting"))
          yield* Effect.forEach(rows, (r) => store.insert(r))
          yield* store.transition({ id: rows[1]!.id, from: ["starting"], to: "idle" })
          const applied = yield* store.transitionMany([
            { id: rows[0]!.id, from: ["starting"], to: "idle", patch: { deployStatus: "SUCCESS" } },
            { id: rows[1]!.id, from: ["starting"], to: "crashed" },
            { id: rows[2]!.id, from: ["starting", "idle"], to: "deleting" },
            { id: `${pool}-missing`, from: ["idle"], to: "deleting" }
          ])
          expect([...applied].sort()).toEqual([rows[0]!.id, rows[2]!.id].sort())
          const after = yield* store.list(pool)
          expect(after.map((r) => [r.id, r.status, r.deployStatus])).toEqual([
            [rows[0]!.id, "idle", "SUCCESS"],
            [rows[1]!.id, "idle", null],
            [rows[2]!.id, "deleting", null]
          ])
          expect(yield* store.transitionMany([])).toEqual([])
        }))

      it.effect("claimIdle takes the newest idle row of the pool and marks it claiming", () =>
        Effect.gen(function*() {
          const store = yield* InstanceStore
          const pool = uniquePool()
          yield* store.insert(row(pool, "old", "idle", 500))
          yield* store.insert(row(pool, "new", "idle", 10))
          yield* store.insert(row(pool, "newer-but-starting", "starting", 1))
          yield* store.insert(row(uniquePool(), "other-pool", "idle", 0))
          const first = yield* store.claimIdle(pool)
          expect(first.map((r) => [r.id, r.status])).toEqual([[`${pool}-new`, "claiming"]])
          const second = yield* store.claimIdle(pool)
          expect(second.map((r) => r.id)).toEqual([`${pool}-old`])
          expect(yield* store.claimIdle(pool)).toEqual([])
        }))

      it.effect("claimIdle with a count takes that many of the newest idle rows at once, newest first", () =>
        Effect.gen(function*() {
          const store = yield* InstanceStore
          const pool = uniquePool()
          yield* Effect.forEach([1, 4, 3, 2, 5], (age) => store.insert(row(pool, `aged-${age}`, "idle", age * 100)))
          yield* store.insert(row(pool, "busy", "claimed", 1000))
          const batch = yield* store.claimIdle(pool, 3)
          expect(batch.map((r) => [r.id, r.status])).toEqual([1, 2, 3].map((age) => [`${pool}-aged-${age}`, "claiming"]))
          expect((yield* store.claimIdle(pool, 10)).map((r) => r.id)).toEqual([`${pool}-aged-4`, `${pool}-aged-5`])
          const counts = yield* store.counts(pool)
          expect([counts.idle, counts.claiming, counts.claimed]).toEqual([0, 5, 1])
        }))

      it.effect("claimIdle never takes an excluded (protected) row, however many are asked for", () =>
        Effect.gen(function*() {
          const store = yield* InstanceStore
          const pool = uniquePool()
          yield* Effect.forEach(["a", "b", "c"], (id, i) => store.insert(row(pool, id, "idle", (i + 1) * 100)))
          const taken = yield* store.claimIdle(pool, 10, null, [`${pool}-b`])
          expect(taken.map((r) => r.id).sort()).toEqual([`${pool}-a`, `${pool}-c`])
          expect(yield* store.claimIdle(pool, 10, null, [`${pool}-b`])).toEqual([])
          expect((yield* store.counts(pool)).idle).toBe(1)
        }))

      it.effect("concurrent claims never hand one row to two callers", () =>
        Effect.gen(function*() {
          const store = yield* InstanceStore
          const pool = uniquePool()
          const idle = 20
          const claimers = options.claimers ?? 50
          yield* Effect.forEach(Array.from({ length: idle }, (_, i) => row(pool, `r${i}`, "idle", i)), (r) => store.insert(r))
          // Single and batched claimers racing for the same rows.
          const results = yield* Effect.forEach(
            Array.from({ length: claimers }, (_, i) => i % 5 + 1),
            (count) => store.claimIdle(pool, count),
            { concurrency: "unbounded" }
          )
          const winners = results.flat().map((r) => r.id)
          expect(winners.length).toBe(idle)
          expect(new Set(winners).size).toBe(idle)
          expect((yield* store.counts(pool)).claiming).toBe(idle)
        }))

      it.effect("remove deletes only from the given statuses; counts cover every status", () =>
        Effect.gen(function*() {
          const store = yield* InstanceStore
          const pool = uniquePool()
          yield* store.insert(row(pool, "a", "deleting"))
          yield* store.insert(row(pool, "b", "claimed"))
          yield* store.insert(row(pool, "c", "pending_acceptance"))
          yield* store.insert(row(pool, "d", "tainted"))
          expect(yield* store.remove(`${pool}-b`, ["deleting"])).toBe(false)
          expect(yield* store.remove(`${pool}-a`, ["deleting"])).toBe(true)
          expect(yield* store.remove(`${pool}-a`, ["deleting"])).toBe(false)
          expect(yield* store.counts(pool)).toEqual({
            creating: 0, starting: 0, idle: 0, claiming: 0, claimed: 1, pending_acceptance: 1, tainted: 1, crashed: 0, deleting: 0
          })
        }))
    })
  })

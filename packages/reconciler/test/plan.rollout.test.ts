/**
 * DESIGN rule 10: surge-first rollouts, as properties of `plan`. On generated worlds where some rows carry
 * an old template hash, and on a healthy platform stepped pass by pass until the rollout is done.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fc from "effect/FastCheck"
import { type Action, Instance, isOutdated, Listing, newInstance, plan, PoolSpec, templateHash } from "../src/index.js"
import { OLD_HASH as OLD, rolledOut, rolloutPass, rolloutPool } from "./support/rollout-model.js"
import { arbWorld, NOW } from "./support/worlds.js"
const current = (spec: PoolSpec) => ({ hash: templateHash(spec.template), image: spec.template.image })
const deletes = (actions: ReadonlyArray<Action>) => actions.filter((a): a is Extract<Action, { _tag: "Delete" }> => a._tag === "Delete")

/** arbWorld, with some rows made from an old template and a random maxSurge. */
const arbRolloutWorld = fc
  .record({ world: arbWorld, old: fc.array(fc.boolean(), { minLength: 30, maxLength: 30 }), maxSurge: fc.integer({ min: 1, max: 3 }) })
  .map(({ maxSurge, old, world }) => {
    const spec = new PoolSpec({ ...world.spec, maxSurge })
    const hash = templateHash(spec.template)
    const rows = world.observation.rows.map((row, i) => new Instance({ ...row, templateHash: old[i] ? OLD : hash }))
    return { spec, observation: { ...world.observation, rows } }
  })

describe("plan: rollouts (rule 10)", () => {
  it.prop("drains only unclaimed rows of an old template, and never takes idle below minIdle", { world: arbRolloutWorld }, ({ world }) => {
    const actions = plan(world.spec, world.observation)
    const rows = new Map(world.observation.rows.map((r) => [r.id, r]))
    const gone = new Set(deletes(actions).map((d) => d.id))
    const rollout = deletes(actions).filter((d) => d.reason === "rollout")
    for (const d of rollout) {
      const row = rows.get(d.id)!
      expect(["idle", "starting"]).toContain(row.status)
      expect(isOutdated(row, current(world.spec))).toBe(true)
    }
    if (rollout.some((d) => d.from === "idle")) {
      const idleLeft = world.observation.rows.filter((r) => r.pool === world.spec.name && r.status === "idle" && !gone.has(r.id))
      expect(idleLeft.length).toBeGreaterThanOrEqual(world.spec.minIdle)
    }
    // Surge only while something of the old template is left to replace.
    if (actions.some((a) => a._tag === "Create" && a.reason === "rollout")) {
      const old = world.observation.rows.filter((r) =>
        r.pool === world.spec.name && (r.status === "idle" || r.status === "starting") && isOutdated(r, current(world.spec)) && !gone.has(r.id)
      )
      expect(old.length).toBeGreaterThan(0)
    }
    // Rule 2 holds for rollouts too: nothing made or removed on an incomplete listing.
    const blind = plan(world.spec, { ...world.observation, listing: Listing.Failed({ reason: "timed out" }) })
    expect(blind.filter((a) => (a._tag === "Create" || a._tag === "Delete") && a.reason === "rollout")).toEqual([])
  }, { fastCheck: { numRuns: 400 } })

  it.prop("on a healthy platform: idle never below minIdle, at most maxSurge extra, claimed untouched, every unclaimed row converges to the new template", {
    minIdle: fc.integer({ min: 0, max: 6 }),
    surplus: fc.integer({ min: 0, max: 3 }),
    oldStarting: fc.integer({ min: 0, max: 3 }),
    claimed: fc.integer({ min: 0, max: 4 }),
    maxSurge: fc.integer({ min: 1, max: 3 }),
    room: fc.integer({ min: 0, max: 4 }),
    createBatch: fc.integer({ min: 1, max: 5 }),
    deleteBatch: fc.integer({ min: 1, max: 5 })
  }, ({ claimed, createBatch, deleteBatch, maxSurge, minIdle, oldStarting, room, surplus }) => {
    const idle = minIdle + surplus
    const spec = new PoolSpec({
      name: "pool",
      namePrefix: "agent-",
      minIdle,
      maxTotal: idle + oldStarting + claimed + maxSurge + room,
      maxSurge,
      createBatch,
      deleteBatch,
      template: { image: "runtime:v2", env: {} }
    })
    let pool = rolloutPool(spec, { idle, starting: oldStarting, claimed })
    const claimedBefore = pool.rows.filter((r) => r.status === "claimed")
    const warmBound = Math.max(idle + oldStarting, minIdle + maxSurge)
    for (let pass = 0; pass < 60; pass++) {
      const { actions, pool: after } = rolloutPass(pool)
      for (const action of actions) expect(["MarkIdle", "Delete", "Create", "Refresh"]).toContain(action._tag)
      pool = after
      const rows = pool.rows
      expect(rows.filter((r) => r.status === "idle").length).toBeGreaterThanOrEqual(minIdle)
      expect(rows.length).toBeLessThanOrEqual(spec.maxTotal)
      expect(rows.filter((r) => r.status !== "claimed").length).toBeLessThanOrEqual(warmBound)
      expect(rows.filter((r) => r.status === "claimed")).toEqual(claimedBefore)
    }
    expect(rolledOut(pool)).toBe(true)
    expect(pool.rows.filter((r) => r.status === "idle").length).toBeGreaterThanOrEqual(minIdle)
  }, { fastCheck: { numRuns: 300 } })

  it("a seed row without a hash is judged by its image; no image is no evidence", () => {
    const spec = { hash: "h", image: "runtime:v2" }
    const base = newInstance({ id: "a", pool: "pool", name: "agent-a", status: "idle", now: new Date(NOW) })
    expect(isOutdated(base, spec)).toBe(false)
    expect(isOutdated(new Instance({ ...base, runtimeImage: "runtime:v1" }), spec)).toBe(true)
    expect(isOutdated(new Instance({ ...base, runtimeImage: "runtime:v2" }), spec)).toBe(false)
    expect(isOutdated(new Instance({ ...base, runtimeImage: "runtime:v2", templateHash: "old" }), spec)).toBe(true)
  })

  it("the hash depends on image and environment, not on the order of its keys", () => {
    const a = templateHash({ image: "img:1", env: { A: "1", B: "2" } })
    expect(templateHash({ image: "img:1", env: { B: "2", A: "1" } })).toBe(a)
    expect(templateHash({ image: "img:2", env: { A: "1", B: "2" } })).not.toBe(a)
    expect(templateHash({ image: "img:1", env: { A: "1", B: "3" } })).not.toBe(a)
    expect(a).toMatch(/^[0-9a-f]{16}$/)
  })
})

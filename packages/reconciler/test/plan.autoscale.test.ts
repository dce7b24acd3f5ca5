/**
 * Rule 11 in the plan: with a warm target (autoscaling's decision) it fills up to the target and drains the
 * oldest idle instances above it — never a claimed one, never below minIdle, nothing on a failed listing.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fc from "effect/FastCheck"
import { type Action, Instance, isOutdated, plan, templateHash, warmStatuses } from "../src/index.js"
import { OLD_HASH } from "./support/rollout-model.js"
import { arbWorld, type World } from "./support/worlds.js"

const runs = { fastCheck: { numRuns: 400 } }

const arbTargeted = fc.tuple(arbWorld, fc.integer({ min: 0, max: 40 })).map(([world, warmTarget]): World => ({
  ...world,
  observation: { ...world.observation, warmTarget }
}))

const surplusDeletes = (actions: ReadonlyArray<Action>) =>
  actions.filter((a): a is Extract<Action, { _tag: "Delete" }> => a._tag === "Delete" && a.reason === "surplus")

const mine = (world: World) => world.observation.rows.filter((r) => r.pool === world.spec.name)
const warm = (rows: ReadonlyArray<Instance>) => rows.filter((r) => warmStatuses.includes(r.status))

describe("plan with a warm target (rule 11)", () => {
  it.prop("drains only idle instances, the oldest first, and never below the target or minIdle", { world: arbTargeted }, ({ world }) => {
    const actions = plan(world.spec, world.observation)
    const drained = surplusDeletes(actions)
    const rows = mine(world)
    const byId = new Map(rows.map((r) => [r.id, r]))
    for (const d of drained) expect(byId.get(d.id)?.status).toBe("idle")
    const leaving = new Set(actions.flatMap((a) => (a._tag === "Delete" ? [a.id] : [])))
    const warmAfter = warm(rows).filter((r) => !leaving.has(r.id)).length
    if (drained.length > 0) {
      expect(warmAfter).toBeGreaterThanOrEqual(Math.max(world.spec.minIdle, world.observation.warmTarget!))
      // Oldest first: every idle row kept is at least as young as every one drained.
      const kept = rows.filter((r) => r.status === "idle" && !leaving.has(r.id))
      const youngestDrained = Math.max(...drained.map((d) => byId.get(d.id)!.createdAt.getTime()))
      for (const row of kept) expect(row.createdAt.getTime()).toBeGreaterThanOrEqual(youngestDrained)
    }
  }, runs)

  it.prop("fills up to the target (within the batch, the allowance and maxTotal) and drains nothing on a failed listing", { world: arbTargeted }, ({ world }) => {
    const actions = plan(world.spec, world.observation)
    const fills = actions.filter((a) => a._tag === "Create" && a.reason === "fill").length
    const leaving = new Set(actions.flatMap((a) => (a._tag === "Delete" ? [a.id] : [])))
    const warmNow = warm(mine(world)).filter((r) => !leaving.has(r.id)).length
    const target = Math.max(world.spec.minIdle, world.observation.warmTarget!)
    expect(fills).toBeLessThanOrEqual(Math.max(0, target - warmNow))
    if (world.observation.listing._tag === "Failed") expect(surplusDeletes(actions)).toEqual([])
    // Never fills and drains at once.
    if (fills > 0) expect(surplusDeletes(actions)).toEqual([])
  }, runs)

  it.prop("without a target, nothing is drained as surplus (a fixed pool keeps what it has)", { world: arbWorld }, ({ world }) => {
    expect(surplusDeletes(plan(world.spec, world.observation))).toEqual([])
  }, runs)

  it.prop("a target of minIdle plans what a fixed pool plans, plus surplus drains", { world: arbWorld }, ({ world }) => {
    const fixed = plan(world.spec, world.observation)
    const targeted = plan(world.spec, { ...world.observation, warmTarget: world.spec.minIdle })
    expect(targeted.filter((a) => !(a._tag === "Delete" && a.reason === "surplus"))).toEqual(fixed)
  }, runs)

  it.prop("during a rollout the target replaces minIdle: old idle ones drained only down to it, and its surge is not surplus", {
    world: arbTargeted,
    old: fc.array(fc.boolean(), { minLength: 30, maxLength: 30 })
  }, ({ old, world: plain }) => {
    const current = { hash: templateHash(plain.spec.template), image: plain.spec.template.image }
    const rows = plain.observation.rows.map((row, i) => new Instance({ ...row, templateHash: old[i] ? OLD_HASH : current.hash }))
    const world = { ...plain, observation: { ...plain.observation, rows } }
    const actions = plan(world.spec, world.observation)
    const rolling = mine(world).some((r) => warmStatuses.includes(r.status) && isOutdated(r, current))
    if (rolling) expect(surplusDeletes(actions)).toEqual([])
    const gone = new Set(actions.flatMap((a) => (a._tag === "Delete" ? [a.id] : [])))
    if (actions.some((a) => a._tag === "Delete" && a.reason === "rollout" && a.from === "idle")) {
      const idleLeft = mine(world).filter((r) => r.status === "idle" && !gone.has(r.id)).length
      expect(idleLeft).toBeGreaterThanOrEqual(Math.max(world.spec.minIdle, world.observation.warmTarget!))
    }
  }, runs)
})

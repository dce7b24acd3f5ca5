/**
 * Rollouts (rule 10): the cost of `plan` on 10k rows with a rollout under way, and how many passes a pool of
 * 20 idle instances takes to move onto a new template on a healthy platform, by maxSurge.
 */
import { Instance, plan, PoolSpec, templateHash } from "../src/index.js"
import { rolledOut, rolloutPass, rolloutPool } from "../test/support/rollout-model.js"
import { steadyWorld } from "../test/support/worlds.js"

const median = (xs: Array<number>) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** The steady 10k world with half its rows made from an old template, and room to drain them all in one pass. */
const planDuringRollout = () => {
  const steady = steadyWorld(10_000)
  const { observation } = steady
  const spec = new PoolSpec({ ...steady.spec, minIdle: 1_000, deleteBatch: 100_000 })
  const current = templateHash(spec.template)
  const rows = observation.rows.map((r, i) => new Instance({ ...r, templateHash: i % 2 === 0 ? "0ld0ld0ld0ld0ld0" : current }))
  const world = { ...observation, rows }
  for (let i = 0; i < 3; i++) plan(spec, world)
  const samples: Array<number> = []
  for (let i = 0; i < 21; i++) {
    const started = performance.now()
    const actions = plan(spec, world)
    samples.push(performance.now() - started)
    if (!actions.some((a) => (a._tag === "Create" || a._tag === "Delete") && a.reason === "rollout")) throw new Error("bench world has no rollout: it would measure nothing")
  }
  return median(samples)
}

const passesToRollOut = (maxSurge: number) => {
  const spec = new PoolSpec({ name: "pool", namePrefix: "agent-", minIdle: 20, maxTotal: 40, maxSurge, createBatch: 10, template: { image: "runtime:v2", env: {} } })
  let pool = rolloutPool(spec, { idle: 20 })
  for (let pass = 1; pass <= 200; pass++) {
    pool = rolloutPass(pool).pool
    if (rolledOut(pool) && pool.rows.filter((r) => r.status === "idle").length === 20) return pass
  }
  throw new Error(`no convergence with maxSurge ${maxSurge}`)
}

export const run = async (): Promise<Record<string, number>> => ({
  "plan.rollout.10k.ms": planDuringRollout(),
  "rollout.passes.20idle.surge1": passesToRollOut(1),
  "rollout.passes.20idle.surge5": passesToRollOut(5)
})

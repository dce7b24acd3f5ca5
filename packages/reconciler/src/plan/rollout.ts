/**
 * Rule 10, surge-first rollouts: which idle instances of an old template the plan may drain now, and how
 * many new ones it should make beyond the warm target. Pure, like `plan`, which calls it.
 */
import type { Instance } from "../domain/instance.js"
import type { PoolSpec } from "../domain/pool-spec.js"
import { isOutdated, templateHash } from "../domain/template.js"

/** The template a pool's instances should carry. */
export const currentTemplate = (spec: PoolSpec) => ({ hash: templateHash(spec.template), image: spec.template.image })

export interface RolloutStep {
  /** Outdated idle rows to delete this pass (oldest first). */
  readonly drain: ReadonlyArray<Instance>
  /** New instances wanted beyond the warm target while old ones remain. */
  readonly surge: number
}

/**
 * `target`: the warm instances the pool keeps (`minIdle`, or autoscaling's target). `idle`: the pool's idle rows
 * that stay this pass (no other delete takes them). `warm`: creating, starting and idle rows that stay.
 * `outdatedLeft`: outdated unclaimed rows that stay besides the idle ones (starting ones whose delete did not fit
 * the batch). Old idle ones go only while idle stays at `target` or above; new ones are made, at most `maxSurge`
 * at a time, until none of the old template remains.
 */
export const rolloutStep = (
  spec: PoolSpec,
  target: number,
  current: { readonly hash: string; readonly image: string },
  idle: ReadonlyArray<Instance>,
  warm: number,
  outdatedLeft: number,
  deleteRoom: number
): RolloutStep => {
  const outdatedIdle = idle.filter((row) => isOutdated(row, current))
  const drainable = Math.max(0, Math.min(outdatedIdle.length, idle.length - target, deleteRoom))
  const drain = outdatedIdle.slice(0, drainable)
  const remaining = outdatedIdle.length - drain.length + outdatedLeft
  if (remaining === 0) return { drain, surge: 0 }
  const warmAfter = warm - drain.length
  const surged = target + Math.min(remaining, spec.maxSurge)
  // What fill makes already (up to the target) is not surge.
  const surge = Math.max(0, surged - warmAfter) - Math.max(0, target - warmAfter)
  return { drain, surge }
}

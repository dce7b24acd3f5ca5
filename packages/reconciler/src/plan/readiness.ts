/**
 * Readiness on its own schedule: between passes, `starting` instances are probed every second or two and
 * marked idle as soon as they answer ready, instead of waiting for the next pass (a tick could be minutes).
 * Pure like `plan`: which rows to probe, and what their answers mean. Probes hit the instances, never the
 * platform's API, so this costs no platform budget.
 */
import type { Instance } from "../domain/instance.js"
import { Action, healthOf, type ProbeAnswer, runtimeVersionOf } from "../domain/observation.js"
import type { PoolSpec } from "../domain/pool-spec.js"
import { deployPhase } from "../domain/service.js"

const probeable = (spec: PoolSpec, row: Instance): row is Instance & { readonly url: string } =>
  row.pool === spec.name && row.status === "starting" && row.url !== null && deployPhase(row.deployStatus) !== "dead"

/** `starting` rows of the pool that have a URL and that the platform did not last report dead. */
export const readinessTargets = (spec: PoolSpec, rows: ReadonlyArray<Instance>): ReadonlyArray<{ readonly id: string; readonly url: string }> =>
  rows.flatMap((row) => (probeable(spec, row) ? [{ id: row.id, url: row.url }] : []))

/**
 * `starting` → `idle` for the rows that answered ready. An instance that serves its health check runs,
 * whatever deploy status was last recorded (the one seen at create, typically): that is recorded as SUCCESS.
 */
export const readyActions = (spec: PoolSpec, rows: ReadonlyArray<Instance>, health: ReadonlyMap<string, ProbeAnswer>): ReadonlyArray<Action> =>
  rows.flatMap((row) => {
    const answer = health.get(row.id)
    if (!probeable(spec, row) || healthOf(answer) !== "ready") return []
    const phase = deployPhase(row.deployStatus)
    return [Action.MarkIdle({
      id: row.id,
      deployStatus: phase === "running" || phase === "sleeping" ? row.deployStatus : "SUCCESS",
      url: row.url,
      runtimeVersion: runtimeVersionOf(answer)
    })]
  })

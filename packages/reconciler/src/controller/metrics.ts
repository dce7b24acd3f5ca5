/** The reconciler's metrics (Effect `Metric`); the server renders them as Prometheus text. */
import { Metric, MetricBoundaries } from "effect"

const secondsBuckets = MetricBoundaries.exponential({ start: 0.005, factor: 2, count: 14 })

export const passDuration = Metric.histogram("warmpool_pass_duration_seconds", secondsBuckets, "Duration of reconcile passes")
export const passes = Metric.counter("warmpool_passes_total", { description: "Reconcile passes, by outcome", incremental: true })
export const actionsPlanned = Metric.counter("warmpool_actions_planned_total", { description: "Actions planned, by kind", incremental: true })
export const actionsFailed = Metric.counter("warmpool_actions_failed_total", { description: "Actions that failed, by kind", incremental: true })
export const providerErrors = Metric.counter("warmpool_provider_errors_total", { description: "Errors from providers and the store, by kind", incremental: true })
export const claimDuration = Metric.histogram("warmpool_claim_duration_seconds", secondsBuckets, "Duration of claims")
export const claims = Metric.counter("warmpool_claims_total", { description: "Claims, by outcome", incremental: true })
export const instances = Metric.gauge("warmpool_instances", { description: "Instances, by status" })
export const outdated = Metric.gauge("warmpool_instances_outdated", {
  description: "Instances made from another template than their pool's: a rollout under way, or claimed ones to upgrade"
})
export const stuckActions = Metric.gauge("warmpool_actions_stuck", {
  description: "Actions failing pass after pass (3 times in a row or more), backing off, by action and reason (error kind)"
})
export const claimsWaiting = Metric.gauge("warmpool_claims_waiting", { description: "Claims waiting for an instance on this replica" })
export const autoscaleClaimRate = Metric.gauge("warmpool_autoscale_claims_per_second", { description: "Claim arrival rate over the short and long windows, and the rate the pool is sized for" })
export const autoscaleReadySeconds = Metric.gauge("warmpool_autoscale_ready_seconds", { description: "Create-to-idle time of recent creates, at the percentile sizing uses" })
export const autoscaleWarm = Metric.gauge("warmpool_autoscale_warm", { description: "Warm instances the demand needs now (desired) and the target kept after scale-down hysteresis" })

const claimCounters = new Map<string, Metric.Metric.Counter<number>>()

/** The claims counter of one outcome, tagged once and kept: claims are the hot path. */
export const claimsWithOutcome = (outcome: string): Metric.Metric.Counter<number> => {
  const known = claimCounters.get(outcome)
  if (known !== undefined) return known
  const counter = Metric.tagged(claims, "outcome", outcome)
  claimCounters.set(outcome, counter)
  return counter
}

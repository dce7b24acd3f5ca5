/** Autoscaling's inputs and decision as the API shows them (plan, status, dashboard). */
import { type Controller, describeSizing, READY_PERCENTILE, type SizingDecision } from "@warmpool/reconciler"
import { Effect, Option } from "effect"

export const toSizing = (decision: SizingDecision) => ({
  summary: describeSizing(decision),
  claimsPerSecond: decision.rate,
  claimsPerSecondShort: decision.rateShort,
  claimsPerSecondLong: decision.rateLong,
  burst: decision.burst,
  readySeconds: decision.readyMs / 1000,
  readyPercentile: READY_PERCENTILE,
  readySamples: decision.readySamples,
  demand: decision.demand,
  desiredWarm: decision.desired,
  targetWarm: decision.target
})

/** `{ sizing: { pool: … } }` for the autoscaling pools among `selected` (their last decision, no platform call); `{}` when none. */
export const sizingOf = (selected: ReadonlyArray<Controller["Type"]>) =>
  Effect.map(Effect.forEach(selected, (c) => Effect.map(c.sizing, Option.map((d) => [c.spec.name, toSizing(d)] as const))), (each) => {
    const found = each.flatMap(Option.toArray)
    return found.length === 0 ? {} : { sizing: Object.fromEntries(found) }
  })

import type { Instance } from "../domain/instance.js"
import type { Action, Listing, Observation } from "../domain/observation.js"
import type { PoolSpec } from "../domain/pool-spec.js"

/** Being written now (lead engineer). Signatures are final. */
export const plan = (_spec: PoolSpec, _observation: Observation): ReadonlyArray<Action> => {
  throw new Error("plan: in progress")
}

/** The rows whose health the next pass needs: `starting` rows with a URL whose deploy phase is running. */
export const probeTargets = (
  _spec: PoolSpec,
  _listing: Listing,
  _rows: ReadonlyArray<Instance>
): ReadonlyArray<{ readonly id: string; readonly url: string }> => {
  throw new Error("probeTargets: in progress")
}

/** Slow start (rule 5): the create allowance of the next pass, from this pass's creates. */
export const nextCreateAllowance = (
  _spec: PoolSpec,
  _previous: number,
  _outcome: { readonly attempted: number; readonly failed: number }
): number => {
  throw new Error("nextCreateAllowance: in progress")
}

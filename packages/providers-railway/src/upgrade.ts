/**
 * `ServiceUpgrader` over Railway: an existing service is moved onto a new template with one environment commit
 * (image and variables together, one deploy), so the new deployment starts with both. The service's own
 * variables (its per-instance secrets) stay: the template's are set over them.
 */
import { type ProviderError, ServiceUpgrader } from "@warmpool/reconciler"
import { Effect, Layer, type Scope } from "effect"
import { RailwayConfig, type RailwayOptions } from "./config.js"
import * as Ops from "./operations.js"
import { connect, environmentPatch } from "./provider.js"

export const makeUpgrader = (options: RailwayOptions): Effect.Effect<ServiceUpgrader["Type"], ProviderError, Scope.Scope> =>
  Effect.map(connect(options), ({ context: { environmentId }, request }) =>
    ServiceUpgrader.of({
      redeploy: (serviceId, template) =>
        request("environmentPatchCommit", Ops.serviceLaunchBatch(0), {
          environmentId,
          patch: environmentPatch([{ serviceId, ...template }]),
          commitMessage: `warmpool: upgrade ${serviceId} to ${template.image}`
        }).pipe(Effect.asVoid, Effect.withSpan("RailwayUpgrader.redeploy", { attributes: { serviceId } }))
    }))

export const RailwayUpgrader = {
  layer: (options: RailwayOptions): Layer.Layer<ServiceUpgrader, ProviderError> => Layer.scoped(ServiceUpgrader, makeUpgrader(options)),
  /** From RAILWAY_* environment variables. */
  layerConfig: Layer.unwrapEffect(Effect.map(RailwayConfig, (options) => Layer.scoped(ServiceUpgrader, makeUpgrader(options))))
}

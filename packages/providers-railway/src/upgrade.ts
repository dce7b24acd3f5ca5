/**
 * `ServiceUpgrader` over Railway: an existing service is moved onto a new template in the order a create uses
 * (variables first, deploys skipped; then the image; then one deploy), so the new deployment starts with both.
 * The service's own variables (its per-instance secrets) stay: the template's are set over them.
 */
import { type ProviderError, ServiceUpgrader } from "@warmpool/reconciler"
import { Effect, Layer, type Scope } from "effect"
import { RailwayConfig, type RailwayOptions } from "./config.js"
import * as Ops from "./operations.js"
import { connect } from "./provider.js"

export const makeUpgrader = (options: RailwayOptions): Effect.Effect<ServiceUpgrader["Type"], ProviderError, Scope.Scope> =>
  Effect.map(connect(options), ({ context: { environmentId, projectId }, request }) =>
    ServiceUpgrader.of({
      redeploy: (serviceId, template) =>
        Effect.gen(function*() {
          yield* request("variableCollectionUpsert", Ops.VariableCollectionUpsert, {
            input: { projectId, environmentId, serviceId, variables: template.env, skipDeploys: true }
          })
          yield* request("serviceInstanceUpdate", Ops.ServiceInstanceUpdate, { environmentId, serviceId, input: { source: { image: template.image } } })
          yield* request("serviceInstanceDeploy", Ops.ServiceInstanceDeploy, { environmentId, serviceId })
        }).pipe(Effect.withSpan("RailwayUpgrader.redeploy", { attributes: { serviceId } }))
    }))

export const RailwayUpgrader = {
  layer: (options: RailwayOptions): Layer.Layer<ServiceUpgrader, ProviderError> => Layer.scoped(ServiceUpgrader, makeUpgrader(options)),
  /** From RAILWAY_* environment variables. */
  layerConfig: Layer.unwrapEffect(Effect.map(RailwayConfig, (options) => Layer.scoped(ServiceUpgrader, makeUpgrader(options))))
}

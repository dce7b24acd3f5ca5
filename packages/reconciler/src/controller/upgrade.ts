/**
 * Explicit upgrades: a claimed instance is never touched by a rollout (rule 10), so an operator moves it onto
 * its pool's current template by hand — the service is redeployed in place, and what its claim holds stays.
 */
import { Effect, Option } from "effect"
import type { Instance } from "../domain/instance.js"
import type { PoolSpec } from "../domain/pool-spec.js"
import { NotFoundError, StaleStatusError } from "../errors.js"
import { templateHash } from "../domain/template.js"
import { InstanceStore, ServiceUpgrader } from "../services.js"

/**
 * Redeploys claimed instance `id` of `spec`'s pool onto the pool's template (with `image` instead of the
 * template's when given); one already on it is left as it is.
 */
export const upgradeInstance = Effect.fn("Controller.upgrade")(function*(spec: PoolSpec, id: string, image?: string) {
  const store = yield* InstanceStore
  const upgrader = yield* ServiceUpgrader
  const found = yield* store.get(id)
  if (Option.isNone(found) || found.value.pool !== spec.name) {
    return yield* new NotFoundError({ operation: "controller.upgrade", message: `no instance ${id} in pool ${spec.name}` })
  }
  const row: Instance = found.value
  if (row.status !== "claimed" || row.serviceId === null) {
    return yield* new StaleStatusError({
      id,
      expected: ["claimed"],
      message: `instance ${id} is ${row.status}${row.serviceId === null ? " and has no service" : ""}: only claimed instances are upgraded by hand; unclaimed ones are rolled by the pool`
    })
  }
  const template = image === undefined ? spec.template : { ...spec.template, image }
  const current = { hash: templateHash(template), image: template.image }
  if (row.templateHash === current.hash) return row
  yield* upgrader.redeploy(row.serviceId, { image: template.image, env: template.env })
  // Compare-and-set: an instance killed meanwhile is not revived by its upgrade.
  return yield* store.transition({ id, from: ["claimed"], to: "claimed", patch: { runtimeImage: current.image, templateHash: current.hash } })
})

/**
 * `railway.requests_per_claim.<placement>`: the steady claims of `railway-at-scale` (one claim every 1.5 s, the
 * seed's defaults) with the pool's services in the shared project, in a project per instance, and in sharded
 * projects. Requests are what is measured, not the tokens' pace: the emulator's per-token limit on projects and the
 * provider's cooldown are 100 ms here (the tokens' pace is `railway.tokens.creates_per_minute.3tokens`).
 * `railway.requests_per_claim` (railway-at-scale) is the shared placement's. Target ≤ 3 in each.
 * `.project-per-instance` is the default (a projectCreate per refill, as the replaced system);
 * `.project-per-instance.spare1` keeps one spare project (`RAILWAY_SPARE_PROJECTS=1`), so a refill takes it instead.
 */
import type { Placement } from "@warmpool/providers-railway"
import { Duration, Effect, Logger, LogLevel } from "effect"
import { CLAIM_EVERY_MS, CLAIMS, serverWith, spec, steadyClaims } from "./railway-at-scale.js"

const placements: ReadonlyArray<readonly [string, Placement]> = [
  ["shared", { _tag: "shared" }],
  ["project-per-instance", { _tag: "project-per-instance", workspaceId: "workspace-1" }],
  ["project-per-instance.spare1", { _tag: "project-per-instance", workspaceId: "workspace-1", spareProjects: 1 }],
  ["sharded", { _tag: "sharded", workspaceId: "workspace-1", servicesPerProject: 25, projectPrefix: "warmpool-shard-" }]
]

export const run = async (): Promise<Record<string, number>> => {
  const results: Record<string, number> = {}
  for (const [name, placement] of placements) {
    const server = serverWith(spec, 30_000, 0, { placement, tokenCooldown: Duration.millis(100) }, { projectCreateEveryMs: 100 })
    const measured = await Effect.runPromise(steadyClaims(spec, CLAIMS, CLAIM_EVERY_MS).pipe(Effect.provide(server), Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning)))
    results[`railway.requests_per_claim.${name}`] = measured.requestsPerClaim
  }
  return results
}

/**
 * `npm run railway:check [-- --register-webhook]`: checks the RAILWAY_* setup against Railway and prints what it
 * finds; with `--register-webhook`, also makes sure Railway sends the pool's deployment events to
 * POOL_PUBLIC_URL (one notification rule in RAILWAY_WORKSPACE_ID, never a duplicate).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect } from "effect"
import { printRailwayCheck, webhookRegistrationConfig } from "../check.js"
import { RailwayConfig } from "../config.js"

Effect.gen(function*() {
  const options = yield* RailwayConfig
  const register = process.argv.includes("--register-webhook") ? yield* webhookRegistrationConfig : undefined
  yield* printRailwayCheck(options, register)
}).pipe(
  Effect.catchAll((error) => Effect.logError(`railway:check failed: ${String(error)}`).pipe(Effect.zipRight(Effect.sync(() => process.exit(1))))),
  NodeRuntime.runMain
)

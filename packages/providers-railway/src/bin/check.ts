/** `npm run railway:check`: checks the RAILWAY_* setup against Railway and prints what it finds. */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { printRailwayCheck } from "../check.js"
import { RailwayConfig } from "../config.js"

Effect.flatMap(RailwayConfig, printRailwayCheck).pipe(
  Effect.catchAll((error) => Effect.logError(`railway:check failed: ${String(error)}`).pipe(Effect.zipRight(Effect.sync(() => process.exit(1))))),
  NodeRuntime.runMain
)

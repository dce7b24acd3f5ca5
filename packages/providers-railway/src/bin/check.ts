/**
 * `npm run railway:check [-- --register-webhook]`: checks the RAILWAY_* setup against Railway and prints what it
 * finds; with `--register-webhook`, also makes sure Railway sends the pool's deployment events to
 * POOL_PUBLIC_URL (one notification rule in RAILWAY_WORKSPACE_ID, never a duplicate).
 */
import { NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Option } from "effect"
import { printRailwayCheck } from "../check.js"
import { RailwayConfig } from "../config.js"
import { RailwayWebhookConfig, webhookSecret } from "../webhooks.js"

const registration = Effect.gen(function*() {
  const settings = yield* RailwayWebhookConfig
  if (Option.isNone(settings.publicUrl) || Option.isNone(settings.workspaceId)) {
    return yield* Effect.fail("--register-webhook needs POOL_PUBLIC_URL and RAILWAY_WORKSPACE_ID")
  }
  const apiKey = yield* Config.option(Config.redacted("POOL_API_KEY"))
  const secret = Option.orElse(settings.secret, () => Option.map(apiKey, (key) => webhookSecret(settings, key)))
  if (Option.isNone(secret)) return yield* Effect.fail("--register-webhook needs RAILWAY_WEBHOOK_SECRET, or POOL_API_KEY to derive it from")
  return { settings, secret: secret.value }
})

Effect.gen(function*() {
  const options = yield* RailwayConfig
  const register = process.argv.includes("--register-webhook") ? yield* registration : undefined
  yield* printRailwayCheck(options, register)
}).pipe(
  Effect.catchAll((error) => Effect.logError(`railway:check failed: ${String(error)}`).pipe(Effect.zipRight(Effect.sync(() => process.exit(1))))),
  NodeRuntime.runMain
)

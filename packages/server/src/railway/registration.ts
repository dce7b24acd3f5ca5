/**
 * At start, with the Railway provider and POOL_PUBLIC_URL and RAILWAY_WORKSPACE_ID set: make sure Railway sends
 * the pool's deployment events here. In the background, and a failure only warns: the tick catches everything
 * a webhook would have said.
 */
import { Railway, registerPoolWebhook, type WebhookSettings } from "@warmpool/providers-railway"
import { describeError } from "@warmpool/reconciler"
import { Effect, Layer, Option, type Redacted } from "effect"

export const registrationLayer = (settings: WebhookSettings, secret: Redacted.Redacted<string>) =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      const railway = yield* Effect.serviceOption(Railway)
      if (Option.isNone(railway)) return
      const register = registerPoolWebhook(railway.value, settings, secret).pipe(
        Effect.flatMap(Option.match({
          onNone: () => Effect.log("railway webhooks: off (set POOL_PUBLIC_URL and RAILWAY_WORKSPACE_ID to have Railway call this server)"),
          onSome: ({ registration, shownUrl }) => Effect.log(`railway webhooks: ${registration} (${shownUrl})`)
        })),
        Effect.catchAll((error) => Effect.logWarning(`railway webhooks: registration failed (${describeError(error)}); the tick still notices every change`))
      )
      yield* Effect.forkScoped(register)
    })
  )

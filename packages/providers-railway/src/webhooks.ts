/**
 * Railway's deployment webhooks: what the pool asks for, how it registers (one workspace notification rule,
 * found before created, never duplicated), and how an event is read. Events are triggers, never the truth:
 * the listing stays the source of truth, so a lost or forged event costs at most one pass.
 */
import { type ProviderError } from "@warmpool/reconciler"
import { Config, Effect, Either, Option, ParseResult, Redacted, Schema } from "effect"
import { createHmac } from "node:crypto"
import * as Ops from "./operations.js"
import type { RailwayPlatform } from "./provider.js"

/** The deployment events the pool listens to. */
export const DEPLOYMENT_EVENTS = [
  "Deployment.deployed",
  "Deployment.crashed",
  "Deployment.failed",
  "Deployment.oom_killed",
  "Deployment.slept",
  "Deployment.resumed"
] as const
export type DeploymentEvent = (typeof DEPLOYMENT_EVENTS)[number]

/** Events after which a row may have to change on evidence only a fresh listing gives (crash, failure). */
export const needsListing = (type: DeploymentEvent): boolean =>
  type === "Deployment.crashed" || type === "Deployment.failed" || type === "Deployment.oom_killed"

/** What the pool reads of a webhook body (Railway sends more; the rest is ignored). */
export const WebhookEvent = Schema.Struct({
  type: Schema.Literal(...DEPLOYMENT_EVENTS),
  resource: Schema.Struct({
    service: Schema.Struct({ id: Schema.String }),
    environment: Schema.Struct({ id: Schema.String })
  }),
  details: Schema.optional(Schema.Struct({ status: Schema.optional(Schema.String) }))
})
export type WebhookEvent = typeof WebhookEvent.Type

/** An event, or a line that says what is wrong with the body. */
export const decodeWebhookEvent = (body: unknown): Either.Either<WebhookEvent, string> =>
  Schema.decodeUnknownEither(WebhookEvent)(body).pipe(
    Either.mapLeft((error) => ParseResult.ArrayFormatter.formatErrorSync(error).map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "))
  )

interface Rule {
  readonly id: string
  readonly eventTypes: ReadonlyArray<string>
  readonly channels: ReadonlyArray<{ readonly config: unknown }>
}

const urlOf = (config: unknown): string | undefined =>
  typeof config === "object" && config !== null && "url" in config && typeof config.url === "string" ? config.url : undefined

export type Registration = "created" | "updated" | "unchanged"

/**
 * Makes sure one notification rule of the workspace sends the pool's deployment events to `url`.
 * A rule already pointing at `url` with every event is left alone; one pointing at another URL under the same
 * `sameHookPrefix` (the secret changed) is updated; otherwise one is created.
 */
export const registerWebhook = (
  platform: Pick<RailwayPlatform, "request" | "context">,
  options: { readonly workspaceId: string; readonly url: string; readonly sameHookPrefix: string }
): Effect.Effect<Registration, ProviderError> =>
  Effect.gen(function*() {
    // The shared project's events; with projects of the pool's own, the whole workspace's (every project it makes).
    const projectOfRule = platform.context.placement._tag === "shared" ? platform.context.projectId : undefined
    const { notificationRules } = yield* platform.request<{ notificationRules: ReadonlyArray<Rule> }>(
      "notificationRules",
      Ops.NotificationRules,
      { workspaceId: options.workspaceId, projectId: projectOfRule }
    )
    const urls = (rule: Rule) => rule.channels.map((c) => urlOf(c.config)).filter((u) => u !== undefined)
    const channelConfigs = [{ type: "webhook", url: options.url }]
    const exact = notificationRules.find((rule) => urls(rule).includes(options.url))
    if (exact !== undefined && DEPLOYMENT_EVENTS.every((e) => exact.eventTypes.includes(e))) return "unchanged" as const
    const ours = exact ?? notificationRules.find((rule) => urls(rule).some((u) => u.startsWith(options.sameHookPrefix)))
    if (ours !== undefined) {
      yield* platform.request("notificationRuleUpdate", Ops.NotificationRuleUpdate, { id: ours.id, input: { eventTypes: DEPLOYMENT_EVENTS, channelConfigs } })
      return "updated" as const
    }
    yield* platform.request("notificationRuleCreate", Ops.NotificationRuleCreate, {
      input: { workspaceId: options.workspaceId, ...(projectOfRule === undefined ? {} : { projectId: projectOfRule }), eventTypes: DEPLOYMENT_EVENTS, channelConfigs }
    })
    return "created" as const
  }).pipe(Effect.withSpan("Railway.registerWebhook"))

/** Where Railway posts: `${POOL_PUBLIC_URL}${WEBHOOK_PATH}/<secret>`. */
export const WEBHOOK_PATH = "/webhooks/railway"

export interface WebhookSettings {
  /** RAILWAY_WEBHOOK_SECRET, when set. */
  readonly secret: Option.Option<Redacted.Redacted<string>>
  /** POOL_PUBLIC_URL: where Railway reaches this server (no trailing slash). */
  readonly publicUrl: Option.Option<string>
  /** RAILWAY_WORKSPACE_ID (else RAILWAY_TEAM_ID): notification rules belong to a workspace. */
  readonly workspaceId: Option.Option<string>
}

export const RailwayWebhookConfig: Config.Config<WebhookSettings> = Config.all({
  secret: Config.option(Config.string("RAILWAY_WEBHOOK_SECRET").pipe(
    Config.validate({ message: "must be at least 16 characters", validation: (s) => s.length >= 16 }),
    Config.map(Redacted.make)
  )),
  publicUrl: Config.option(Config.string("POOL_PUBLIC_URL").pipe(
    Config.validate({ message: "must be an http(s) URL", validation: (u) => /^https?:\/\/[^\s/]+/.test(u) }),
    Config.map((u) => u.replace(/\/+$/, ""))
  )),
  // The workspace the pool's projects are made in is the one whose events it hears.
  workspaceId: Config.option(Config.nonEmptyString("RAILWAY_WORKSPACE_ID").pipe(Config.orElse(() => Config.nonEmptyString("RAILWAY_TEAM_ID"))))
})

/**
 * The secret in the webhook's URL. Not POOL_API_KEY: a URL ends up in logs and in Railway's settings. Without
 * RAILWAY_WEBHOOK_SECRET it is derived from the key with an HMAC: stable across restarts, and the key cannot
 * be recovered from it.
 */
export const webhookSecret = (settings: Pick<WebhookSettings, "secret">, apiKey: Redacted.Redacted<string>): Redacted.Redacted<string> =>
  Option.getOrElse(settings.secret, () =>
    Redacted.make(createHmac("sha256", Redacted.value(apiKey)).update("warmpool railway webhook").digest("base64url")))

/** Registers the pool's webhook when POOL_PUBLIC_URL and RAILWAY_WORKSPACE_ID are both set; None otherwise. */
export const registerPoolWebhook = (
  platform: Pick<RailwayPlatform, "request" | "context">,
  settings: WebhookSettings,
  secret: Redacted.Redacted<string>
): Effect.Effect<Option.Option<{ readonly registration: Registration; readonly shownUrl: string }>, ProviderError> =>
  Option.match(Option.all({ publicUrl: settings.publicUrl, workspaceId: settings.workspaceId }), {
    onNone: () => Effect.succeed(Option.none()),
    onSome: ({ publicUrl, workspaceId }) =>
      registerWebhook(platform, { workspaceId, url: `${publicUrl}${WEBHOOK_PATH}/${Redacted.value(secret)}`, sameHookPrefix: `${publicUrl}${WEBHOOK_PATH}/` }).pipe(
        // What may be shown: the URL without its secret.
        Effect.map((registration) => Option.some({ registration, shownUrl: `${publicUrl}${WEBHOOK_PATH}/<secret>` }))
      )
  })

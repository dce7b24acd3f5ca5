/**
 * Per-instance AgentMail inboxes: created before the instance (idempotent through `client_id`, so a retried
 * create returns the same inbox), deleted with it. An inbox's id is its address, so a row that lost it is
 * released by the address its name gives.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import { Credentials, type Instance, type IssuedCredentials, type ProviderError } from "@warmpool/reconciler"
import { makeJsonApi } from "@warmpool/reconciler/http"
import { Config, Effect, Layer, Option, Redacted, Schema } from "effect"

export interface AgentMailOptions {
  readonly apiKey: Option.Option<Redacted.Redacted<string>>
  /** Custom domain for inboxes; AgentMail's own when none. */
  readonly domain: Option.Option<string>
  readonly apiUrl: string
}

export const AgentMailConfig: Config.Config<AgentMailOptions> = Config.all({
  apiKey: Config.option(Config.redacted("AGENTMAIL_API_KEY")),
  domain: Config.option(Config.string("AGENTMAIL_DOMAIN").pipe(
    Config.validate({ message: "AGENTMAIL_DOMAIN must be a domain name, e.g. mail.convos.org", validation: (d) => /^[a-z0-9.-]+\.[a-z]{2,}$/i.test(d) })
  )),
  apiUrl: Config.string("AGENTMAIL_API_URL").pipe(Config.withDefault("https://api.agentmail.to/v0"))
})

/** AgentMail's own domain, where inboxes live without a custom one. */
export const DEFAULT_DOMAIN = "agentmail.to"

const Inbox = Schema.Struct({ inbox_id: Schema.String })
const Deleted = Schema.Unknown

/** The key of the row's `handles` under which an instance's inbox id is kept. */
export const AGENTMAIL_INBOX_HANDLE = "agentmailInboxId"

/** The inbox username for an instance: its name, lower-cased (addresses are case-insensitive). */
export const usernameOf = (instance: Instance) => instance.name.toLowerCase()

const make = (options: AgentMailOptions, apiKey: Redacted.Redacted<string>) =>
  Effect.gen(function*() {
    const api = yield* makeJsonApi({ baseUrl: options.apiUrl, token: apiKey })
    const domain = Option.getOrElse(options.domain, () => DEFAULT_DOMAIN)

    const issue = (instance: Instance): Effect.Effect<IssuedCredentials, ProviderError> =>
      api.call({
        operation: "agentmail.createInbox",
        method: "POST",
        path: "/inboxes",
        body: {
          username: usernameOf(instance),
          ...(Option.isSome(options.domain) ? { domain: options.domain.value } : {}),
          display_name: instance.name,
          client_id: instance.name
        },
        response: Inbox
      }).pipe(
        Effect.map((inbox) => ({ env: { AGENTMAIL_INBOX_ID: inbox.inbox_id }, handles: { [AGENTMAIL_INBOX_HANDLE]: inbox.inbox_id } })),
        Effect.withSpan("AgentMailCredentials.issue")
      )

    const release = (instance: Instance): Effect.Effect<void, ProviderError> => {
      const inboxId = instance.handles[AGENTMAIL_INBOX_HANDLE] ?? `${usernameOf(instance)}@${domain}`
      return api.call({ operation: "agentmail.deleteInbox", method: "DELETE", path: `/inboxes/${encodeURIComponent(inboxId)}`, response: Deleted }).pipe(
        Effect.asVoid,
        Effect.catchTag("NotFoundError", () => Effect.void), // already gone
        Effect.withSpan("AgentMailCredentials.release")
      )
    }
    return Credentials.of({ issue, release })
  })

const none = Credentials.of({ issue: () => Effect.succeed({ env: {}, handles: {} }), release: () => Effect.void })

/** From options (library users, tests). Needs an `HttpClient`. Without an API key: no inboxes. */
const layer = (options: AgentMailOptions): Layer.Layer<Credentials, never, HttpClient.HttpClient> =>
  Option.match(options.apiKey, {
    onNone: () => Layer.succeed(Credentials, none),
    onSome: (apiKey) => Layer.effect(Credentials, make(options, apiKey))
  })

export const AgentMailCredentials = {
  layer,
  /** From the environment (AGENTMAIL_API_KEY, AGENTMAIL_DOMAIN, AGENTMAIL_API_URL). */
  layerConfig: Layer.unwrapEffect(Effect.map(AgentMailConfig, layer))
}

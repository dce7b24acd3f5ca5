/**
 * `railway:check`: what an operator runs to debug a setup. Which kind the token is, which project and
 * environment it reaches, how many services that environment has, and Railway's rate-limit headers.
 */
import { Config, Console, Effect, Option, type Redacted } from "effect"
import type { RailwayOptions } from "./config.js"
import * as Ops from "./operations.js"
import { connect } from "./provider.js"
import { RailwayWebhookConfig, registerPoolWebhook, webhookSecret, type WebhookSettings } from "./webhooks.js"

export interface RailwayCheckReport {
  readonly tokenKind: string
  readonly project: string
  readonly environment: string
  readonly services: number
  readonly rateLimit: Readonly<Record<string, string>>
  /** `--register-webhook`: what registration did. */
  readonly webhook?: string
}

/** `--register-webhook`: the webhook settings and its secret. */
export interface WebhookRegistration {
  readonly settings: WebhookSettings
  readonly secret: Redacted.Redacted<string>
}

/** `--register-webhook` from the environment: POOL_PUBLIC_URL, RAILWAY_WORKSPACE_ID, and the secret (or POOL_API_KEY). */
export const webhookRegistrationConfig = Effect.gen(function*() {
  const settings = yield* RailwayWebhookConfig
  if (Option.isNone(settings.publicUrl) || Option.isNone(settings.workspaceId)) {
    return yield* Effect.fail("--register-webhook needs POOL_PUBLIC_URL and RAILWAY_WORKSPACE_ID")
  }
  const apiKey = yield* Config.option(Config.redacted("POOL_API_KEY"))
  const secret = Option.orElse(settings.secret, () => Option.map(apiKey, (key) => webhookSecret(settings, key)))
  if (Option.isNone(secret)) return yield* Effect.fail("--register-webhook needs RAILWAY_WEBHOOK_SECRET, or POOL_API_KEY to derive it from")
  const registration: WebhookRegistration = { settings, secret: secret.value }
  return registration
})

export const railwayCheck = (options: RailwayOptions, register?: WebhookRegistration) =>
  Effect.gen(function*() {
    const { context, request, requestWithHeaders } = yield* connect(options)
    const { placement } = context
    type Page = { readonly edges: ReadonlyArray<unknown>; readonly pageInfo: { readonly hasNextPage: boolean } }
    // One page of the listing, for its headers and a count (counting past it would cost a call per page).
    const { page, rateLimit } = placement._tag === "shared"
      ? yield* Effect.map(
        requestWithHeaders<{ environment: { serviceInstances: Page } }>("listServiceInstances", Ops.ListServiceInstances, {
          environmentId: context.environmentId,
          first: options.pageSize,
          after: null,
          volumes: false
        }),
        (answer) => ({ page: answer.data.environment.serviceInstances, rateLimit: answer.rateLimit })
      )
      : yield* Effect.map(
        requestWithHeaders<{ workspace: { projects: Page } }>("listWorkspaceProjects", Ops.ListWorkspaceProjects, {
          workspaceId: placement.workspaceId,
          first: options.pageSize,
          after: null,
          services: 1,
          volumes: false
        }),
        (answer) => ({ page: answer.data.workspace.projects, rateLimit: answer.rateLimit })
      )
    const report: RailwayCheckReport = {
      tokenKind: context.kind === "project" ? "project token (Project-Access-Token)" : "account or workspace token (Bearer)",
      project: placement._tag === "shared"
        ? `${context.projectName} (${context.projectId})`
        : `${placement._tag}: projects of workspace ${placement.workspaceId} (${page.edges.length}${page.pageInfo.hasNextPage ? "+" : ""} in it)`,
      environment: placement._tag === "shared" ? `${context.environmentName} (${context.environmentId})` : `${context.environmentName} (in each project)`,
      services: placement._tag === "shared" ? page.edges.length : 0,
      rateLimit
    }
    if (register === undefined) return { report, more: page.pageInfo.hasNextPage }
    const registered = yield* registerPoolWebhook({ context, request }, register.settings, register.secret)
    const webhook = Option.match(registered, {
      onNone: () => "not registered: set POOL_PUBLIC_URL and RAILWAY_WORKSPACE_ID",
      onSome: ({ registration, shownUrl }) => `${registration} (${shownUrl})`
    })
    return { report: { ...report, webhook }, more: page.pageInfo.hasNextPage }
  }).pipe(Effect.scoped)

/** The report as the lines an operator reads. */
export const formatRailwayCheck = ({ more, report }: { report: RailwayCheckReport; more: boolean }) => [
  `token:        ${report.tokenKind}`,
  `project:      ${report.project}`,
  `environment:  ${report.environment}`,
  `services:     ${report.services}${more ? "+ (first page)" : ""}`,
  `rate limit:   ${Object.entries(report.rateLimit).map(([k, v]) => `${k}=${v}`).join(" ") || "no headers"}`,
  ...(report.webhook === undefined ? [] : [`webhook:      ${report.webhook}`])
]

export const printRailwayCheck = (options: RailwayOptions, register?: WebhookRegistration) =>
  Effect.flatMap(railwayCheck(options, register), (result) => Effect.forEach(formatRailwayCheck(result), (line) => Console.log(line), { discard: true }))

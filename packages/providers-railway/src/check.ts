/**
 * `railway:check`: what an operator runs to debug a setup. Which kind the token is, which project and
 * environment it reaches, how many services that environment has, and Railway's rate-limit headers.
 */
import { Console, Effect } from "effect"
import type { RailwayOptions } from "./config.js"
import * as Ops from "./operations.js"
import { connect } from "./provider.js"

export interface RailwayCheckReport {
  readonly tokenKind: string
  readonly project: string
  readonly environment: string
  readonly services: number
  readonly rateLimit: Readonly<Record<string, string>>
}

export const railwayCheck = (options: RailwayOptions) =>
  Effect.gen(function*() {
    const { context, requestWithHeaders } = yield* connect(options)
    // One page of the listing, for its headers and a count (counting past it would cost a call per page).
    const answer = yield* requestWithHeaders<{ environment: { serviceInstances: { edges: ReadonlyArray<unknown>; pageInfo: { hasNextPage: boolean } } } }>(
      "listServiceInstances",
      Ops.ListServiceInstances,
      { environmentId: context.environmentId, first: options.pageSize, after: null }
    )
    const page = answer.data.environment.serviceInstances
    const report: RailwayCheckReport = {
      tokenKind: context.kind === "project" ? "project token (Project-Access-Token)" : "account or workspace token (Bearer)",
      project: `${context.projectName} (${context.projectId})`,
      environment: `${context.environmentName} (${context.environmentId})`,
      services: page.edges.length,
      rateLimit: answer.rateLimit
    }
    return { report, more: page.pageInfo.hasNextPage }
  }).pipe(Effect.scoped)

/** The report as the lines an operator reads. */
export const formatRailwayCheck = ({ more, report }: { report: RailwayCheckReport; more: boolean }) => [
  `token:        ${report.tokenKind}`,
  `project:      ${report.project}`,
  `environment:  ${report.environment}`,
  `services:     ${report.services}${more ? "+ (first page)" : ""}`,
  `rate limit:   ${Object.entries(report.rateLimit).map(([k, v]) => `${k}=${v}`).join(" ") || "no headers"}`
]

export const printRailwayCheck = (options: RailwayOptions) =>
  Effect.flatMap(railwayCheck(options), (result) => Effect.forEach(formatRailwayCheck(result), (line) => Console.log(line), { discard: true }))

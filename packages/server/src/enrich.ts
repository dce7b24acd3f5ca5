/**
 * `db:enrich`: fills what older rows lack (url, runtime_image, service_id; and where the platform can read
 * service variables, gateway_token and agentmail_inbox_id) from the provider, as the seed's script did.
 * Without `all`, only empty fields are filled; with `dryRun`, nothing is written.
 */
import { ServiceVariables } from "@warmpool/providers-railway"
import { ComputeProvider, type InstancePatch, InstanceStore } from "@warmpool/reconciler"
import { Effect, Option } from "effect"

export interface EnrichOptions {
  readonly pool: string
  readonly namePrefix: string
  readonly dryRun: boolean
  readonly all: boolean
}

export interface EnrichChange {
  readonly id: string
  readonly changes: Readonly<Record<string, { readonly from: string | null; readonly to: string }>>
}

/** Variables that hold a row's fields. */
const fromVariables = { gatewayToken: "OPENCLAW_GATEWAY_TOKEN", agentmailInboxId: "AGENTMAIL_INBOX_ID" } as const

export const enrich = (options: EnrichOptions) =>
  Effect.gen(function*() {
    const store = yield* InstanceStore
    const compute = yield* ComputeProvider
    const variables = yield* Effect.serviceOption(ServiceVariables)
    const rows = yield* store.list(options.pool)
    const services = yield* compute.list(options.namePrefix)
    const report: Array<EnrichChange> = []
    for (const row of rows) {
      const service = services.find((s) => (row.serviceId !== null ? s.serviceId === row.serviceId : s.name === row.name))
      if (service === undefined) continue
      const wants = (field: "url" | "runtimeImage" | "serviceId" | "gatewayToken" | "agentmailInboxId") => options.all || row[field] === null
      const found: Record<string, string | null> = { url: service.url, runtimeImage: service.image, serviceId: service.serviceId }
      if (Option.isSome(variables) && (wants("gatewayToken") || wants("agentmailInboxId"))) {
        const vars = yield* variables.value.read(service.serviceId)
        for (const [field, name] of Object.entries(fromVariables)) found[field] = vars[name] ?? null
      }
      const changes: Record<string, { from: string | null; to: string }> = {}
      for (const [field, value] of Object.entries(found)) {
        const current = row[field as keyof typeof fromVariables | "url" | "runtimeImage" | "serviceId"]
        if (value !== null && value !== current && wants(field as never)) changes[field] = { from: current, to: value }
      }
      if (Object.keys(changes).length === 0) continue
      report.push({ id: row.id, changes })
      if (!options.dryRun) {
        const patch = Object.fromEntries(Object.entries(changes).map(([field, change]) => [field, change.to])) as InstancePatch
        // Compare-and-set on the status read: a row that moved meanwhile is left for the next run.
        yield* Effect.ignore(store.transition({ id: row.id, from: [row.status], to: row.status, patch }))
      }
    }
    return report
  })

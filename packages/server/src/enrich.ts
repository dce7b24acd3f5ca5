/**
 * `db:enrich`: fills what older rows lack (url, runtime_image, service_id; and where the platform can read
 * service variables, gateway_token and agentmail_inbox_id) from the provider, as the seed's script did.
 * Without `all`, only empty fields are filled; with `dryRun`, nothing is written.
 */
import { AGENTMAIL_INBOX_HANDLE } from "@warmpool/providers-agentmail"
import { ServiceVariables } from "@warmpool/providers-railway"
import { ComputeProvider, type Instance, type InstancePatch, InstanceStore } from "@warmpool/reconciler"
import { Effect, Option } from "effect"
import { GATEWAY_TOKEN_HANDLE } from "./convos/secrets.js"

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

/** Service variables that hold a row's handles, by handle. */
const fromVariables: Readonly<Record<string, string>> = {
  [GATEWAY_TOKEN_HANDLE]: "OPENCLAW_GATEWAY_TOKEN",
  [AGENTMAIL_INBOX_HANDLE]: "AGENTMAIL_INBOX_ID"
}
const isHandle = (field: string) => field in fromVariables

/** A field's value in the row: one of its own, or one of its handles. */
const current = (row: Instance, field: string): string | null =>
  isHandle(field) ? row.handles[field] ?? null : row[field as "url" | "runtimeImage" | "serviceId"]

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
      const wants = (field: string) => options.all || current(row, field) === null
      const found: Record<string, string | null> = { url: service.url, runtimeImage: service.image, serviceId: service.serviceId }
      if (Option.isSome(variables) && Object.keys(fromVariables).some(wants)) {
        const vars = yield* variables.value.read(service.serviceId)
        for (const [field, name] of Object.entries(fromVariables)) found[field] = vars[name] ?? null
      }
      const changes: Record<string, { from: string | null; to: string }> = {}
      for (const [field, value] of Object.entries(found)) {
        const was = current(row, field)
        if (value !== null && value !== was && wants(field)) changes[field] = { from: was, to: value }
      }
      if (Object.keys(changes).length === 0) continue
      report.push({ id: row.id, changes })
      if (!options.dryRun) {
        const entries = Object.entries(changes).map(([field, change]) => [field, change.to] as const)
        const patch: InstancePatch = {
          ...Object.fromEntries(entries.filter(([field]) => !isHandle(field))),
          handles: Object.fromEntries(entries.filter(([field]) => isHandle(field)))
        }
        // Compare-and-set on the status read: a row that moved meanwhile is left for the next run.
        yield* Effect.ignore(store.transition({ id: row.id, from: [row.status], to: row.status, patch }))
      }
    }
    return report
  })

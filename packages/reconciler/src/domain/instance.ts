import { Schema } from "effect"

/**
 * Lifecycle of a row: `creating → starting → idle → claiming → claimed`, plus `crashed` and `deleting`.
 * The seed's five statuses (starting, idle, claiming, claimed, crashed) keep their meaning.
 */
export const InstanceStatus = Schema.Literal(
  "creating",
  "starting",
  "idle",
  "claiming",
  "claimed",
  "crashed",
  "deleting"
)
export type InstanceStatus = typeof InstanceStatus.Type

export const instanceStatuses: ReadonlyArray<InstanceStatus> = InstanceStatus.literals

/** Statuses that count toward the warm part of the pool (rule 4: in-flight creates count). */
export const warmStatuses: ReadonlyArray<InstanceStatus> = ["creating", "starting", "idle"]

/** Statuses the reconciler must never delete, drain or mark idle (rule 1). */
export const boundStatuses: ReadonlyArray<InstanceStatus> = ["claiming", "claimed"]

const NullableString = Schema.NullOr(Schema.String)

/**
 * One instance: every column of the seed's `instances` table, plus what the reconciler needs
 * (pool, status_changed_at, failures, last_error, template_hash). Field names are camelCase here and snake_case in SQL.
 */
export class Instance extends Schema.Class<Instance>("Instance")({
  id: Schema.String,
  pool: Schema.String,
  serviceId: NullableString,
  name: Schema.String,
  url: NullableString,
  status: InstanceStatus,
  deployStatus: NullableString,
  agentName: NullableString,
  conversationId: NullableString,
  inviteUrl: NullableString,
  instructions: NullableString,
  createdAt: Schema.DateFromSelf,
  claimedAt: Schema.NullOr(Schema.DateFromSelf),
  sourceBranch: NullableString,
  runtimeImage: NullableString,
  /** Hash of the pool template the instance was created from (or last upgraded to); rollouts compare it. */
  templateHash: NullableString,
  openrouterKeyHash: NullableString,
  agentmailInboxId: NullableString,
  gatewayToken: NullableString,
  statusChangedAt: Schema.DateFromSelf,
  failures: Schema.Int,
  lastError: NullableString,
  /** The incarnation (one run of one process) that made the row's last intent: creating, claiming, deleting. */
  intentBy: NullableString
}) {}

/** Fields a transition may change besides the status. */
export type InstancePatch = Partial<
  Omit<typeof Instance.Type, "id" | "pool" | "status" | "statusChangedAt" | "createdAt">
>

/** A fresh row with every optional column empty. */
export const newInstance = (fields: {
  readonly id: string
  readonly pool: string
  readonly name: string
  readonly status: InstanceStatus
  readonly now: Date
} & InstancePatch): Instance => {
  const { now, ...rest } = fields
  return new Instance({
    serviceId: null,
    url: null,
    deployStatus: null,
    agentName: null,
    conversationId: null,
    inviteUrl: null,
    instructions: null,
    claimedAt: null,
    sourceBranch: null,
    runtimeImage: null,
    templateHash: null,
    openrouterKeyHash: null,
    agentmailInboxId: null,
    gatewayToken: null,
    failures: 0,
    lastError: null,
    intentBy: null,
    ...rest,
    createdAt: now,
    statusChangedAt: now
  })
}

/** Counts by status, every status present (zero when none). */
export type StatusCounts = { readonly [S in InstanceStatus]: number }

/** Claim order: the oldest row first, the id breaking ties. */
export const oldestFirst = (a: Instance, b: Instance): number => a.createdAt.getTime() - b.createdAt.getTime() || a.id.localeCompare(b.id)

export const countByStatus = (rows: Iterable<{ readonly status: InstanceStatus }>): StatusCounts => {
  const counts: Record<InstanceStatus, number> = {
    creating: 0,
    starting: 0,
    idle: 0,
    claiming: 0,
    claimed: 0,
    crashed: 0,
    deleting: 0
  }
  for (const row of rows) counts[row.status]++
  return counts
}

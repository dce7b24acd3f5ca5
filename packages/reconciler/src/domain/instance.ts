import { Schema } from "effect"

/**
 * Lifecycle of a row: `creating → starting → idle → claiming → claimed`, plus `crashed` and `deleting`.
 * A claim whose join awaits the conversation's acceptance is `pending_acceptance` until the runtime reports
 * the outcome: accepted → `claimed`, refused → `tainted` (bound to nobody yet unusable: cleaned up like `crashed`).
 * The seed's five statuses (starting, idle, claiming, claimed, crashed) keep their meaning.
 */
export const InstanceStatus = Schema.Literal(
  "creating",
  "starting",
  "idle",
  "claiming",
  "claimed",
  "pending_acceptance",
  "tainted",
  "crashed",
  "deleting"
)
export type InstanceStatus = typeof InstanceStatus.Type

export const instanceStatuses: ReadonlyArray<InstanceStatus> = InstanceStatus.literals

/** Statuses that count toward the warm part of the pool (rule 4: in-flight creates count). */
export const warmStatuses: ReadonlyArray<InstanceStatus> = ["creating", "starting", "idle"]

/** Statuses the reconciler must never delete, drain or mark idle (rule 1); the pool counts them as claimed. */
export const boundStatuses: ReadonlyArray<InstanceStatus> = ["claiming", "claimed", "pending_acceptance"]

/** Statuses that stay until an operator (or an API call) dismisses them. */
export const dismissableStatuses: ReadonlyArray<InstanceStatus> = ["crashed", "tainted"]

const NullableString = Schema.NullOr(Schema.String)

/** Named strings a row keeps for someone else: a credentials issuer's handles, a runtime's claim record. */
export const StringMap = Schema.Record({ key: Schema.String, value: Schema.String })
export type StringMap = typeof StringMap.Type

/**
 * One instance, as the reconciler sees it: what any pooled thing has (a service, a URL, a lifecycle). What is
 * particular to one kind of instance lives in two maps owned by others: `handles` (what the credentials
 * issuers need to release what they issued) and `attributes` (what the runtime recorded of the claim).
 * Field names are camelCase here and snake_case in SQL.
 */
export class Instance extends Schema.Class<Instance>("Instance")({
  id: Schema.String,
  pool: Schema.String,
  serviceId: NullableString,
  name: Schema.String,
  url: NullableString,
  status: InstanceStatus,
  deployStatus: NullableString,
  createdAt: Schema.DateFromSelf,
  claimedAt: Schema.NullOr(Schema.DateFromSelf),
  runtimeImage: NullableString,
  /** Hash of the pool template the instance was created from (or last upgraded to); rollouts compare it. */
  templateHash: NullableString,
  /** The credentials issuers' handles, each under keys of its own (e.g. an API key's id, an inbox). */
  handles: StringMap,
  /** What the runtime recorded when the instance was claimed (e.g. the conversation it joined). */
  attributes: StringMap,
  statusChangedAt: Schema.DateFromSelf,
  failures: Schema.Int,
  lastError: NullableString,
  /** The incarnation (one run of one process) that made the row's last intent: creating, claiming, deleting. */
  intentBy: NullableString
}) {
  /**
   * An Instance of fields already known to be valid (a row the database's column types checked, a patch of
   * one), made without the constructor's copies and checks: a pass makes one per row, thousands per second.
   * The result is what the constructor makes: the constructor only copies the fields onto a new object.
   */
  static trusted(fields: InstanceFields): Instance {
    return Object.assign(Object.create(Instance.prototype) as Instance, fields)
  }
}

/** Every field of an Instance. */
export type InstanceFields = Schema.Struct.Type<typeof Instance.fields>

/**
 * Fields a transition may change besides the status. `handles` and `attributes` are merged into the row's:
 * the keys given are set, the others kept.
 */
export type InstancePatch = Partial<
  Omit<typeof Instance.Type, "id" | "pool" | "status" | "statusChangedAt" | "createdAt">
>

/** The row after `patch`, with the maps merged as a store merges them. */
export const applyPatch = (row: Instance, patch: InstancePatch | undefined, fields: Partial<Pick<Instance, "status" | "statusChangedAt">> = {}): Instance =>
  Instance.trusted({
    ...row,
    ...patch,
    ...fields,
    handles: patch?.handles === undefined ? row.handles : { ...row.handles, ...patch.handles },
    attributes: patch?.attributes === undefined ? row.attributes : { ...row.attributes, ...patch.attributes }
  })

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
    claimedAt: null,
    runtimeImage: null,
    templateHash: null,
    handles: {},
    attributes: {},
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

/** Listing order: the oldest row first, the id breaking ties. */
export const oldestFirst = (a: Instance, b: Instance): number => a.createdAt.getTime() - b.createdAt.getTime() || a.id.localeCompare(b.id)

/** Claim order: the newest row first (the freshest image, the least-aged container), the id breaking ties. */
export const newestFirst = (a: Instance, b: Instance): number => b.createdAt.getTime() - a.createdAt.getTime() || a.id.localeCompare(b.id)

export const countByStatus = (rows: Iterable<{ readonly status: InstanceStatus }>): StatusCounts => {
  const counts: Record<InstanceStatus, number> = {
    creating: 0,
    starting: 0,
    idle: 0,
    claiming: 0,
    claimed: 0,
    pending_acceptance: 0,
    tainted: 0,
    crashed: 0,
    deleting: 0
  }
  for (const row of rows) counts[row.status]++
  return counts
}

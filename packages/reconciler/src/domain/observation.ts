import { Data } from "effect"
import type { Instance, InstanceStatus } from "./instance.js"
import type { ServiceInfo } from "./service.js"

/** The platform's answer to "which services exist": the complete list, or nothing trustworthy. */
export type Listing = Data.TaggedEnum<{
  Complete: { readonly services: ReadonlyArray<ServiceInfo> }
  /** Listing failed, timed out or was cut short: no destructive action may follow from it (rule 2). */
  Failed: { readonly reason: string }
  /**
   * An earlier pass's complete listing, reused by a pass that only refills (after a claim): rows are the
   * intent record, so creates can be counted from them; nothing destructive follows from it (rule 2).
   */
  Recent: { readonly services: ReadonlyArray<ServiceInfo>; readonly ageMs: number }
}>
export const Listing = Data.taggedEnum<Listing>()

/** Result of `GET {url}/pool/health`. */
export type Health = "ready" | "not-ready" | "unreachable"

/** A health answer that also says which runtime version answered (Convos runtimes send `{ ready, version }`). */
export interface VersionedHealth {
  readonly health: Health
  readonly runtimeVersion: string
}

/** What a probe answers: the health alone, or with the runtime's version when the runtime told it. */
export type ProbeAnswer = Health | VersionedHealth

export const healthOf = (answer: ProbeAnswer | undefined): Health | undefined => (typeof answer === "object" ? answer.health : answer)

export const runtimeVersionOf = (answer: ProbeAnswer | undefined): string | undefined =>
  typeof answer === "object" ? answer.runtimeVersion : undefined

/** Everything one pass looks at. Plain data: `plan` reads it and nothing else. */
export interface Observation {
  readonly listing: Listing
  readonly rows: ReadonlyArray<Instance>
  /** Health of the rows that were probed (see `probeTargets`), by instance id. */
  readonly health: ReadonlyMap<string, ProbeAnswer>
  /** Wall clock, epoch milliseconds. */
  readonly now: number
  /** Slow start after create failures (rule 5): at most this many creates this pass. */
  readonly createAllowance: number
  /** Creates an operator asked for on top of what the pool needs (`replenish {count}`). */
  readonly requestedCreates: number
  /** Claims waiting for an instance, on every replica: each raises the warm target by one while it waits. */
  readonly waitingClaims?: number
  /**
   * Warm instances the pool wants when it autoscales (the sizing decision's target): the plan fills up to it
   * and drains idle instances above it. Absent: a fixed pool of `minIdle`. Never below `minIdle` either way.
   */
  readonly warmTarget?: number
  /**
   * Instances an operator protects (PROTECTED_INSTANCES): never deleted for any reason, never drained or rolled
   * out, and not counted as warm (a claim never takes them). They still count toward `maxTotal`.
   */
  readonly protectedIds?: ReadonlySet<string>
  /**
   * Actions that failed on earlier passes, by `actionKey` (rule 12): how many times in a row, and when the
   * back-off lets them be tried again (epoch ms). Absent: nothing is failing.
   */
  readonly backoff?: ReadonlyMap<string, { readonly failures: number; readonly retryAt: number }>
  /**
   * The rows whose create this incarnation has under way now. A `creating` row of this incarnation that is not
   * among them was left by a pass cut short (the lease lost mid-pass) and is finished at once, like another run's.
   * Absent: every young create of this incarnation counts as under way (it waits for `createTimeoutMs`).
   */
  readonly ownCreatesInFlight?: ReadonlySet<string>
  /**
   * The `claiming` rows this incarnation is settling now. One of ours that is not among them, past a short grace,
   * has no claim behind it any more (its claim gave up while the database was away, and the row was taken or
   * left behind): crashed at once, never back to idle. Absent: ours wait for `claimTimeoutMs`.
   */
  readonly ownClaimsInFlight?: ReadonlySet<string>
  /** The incarnation running this pass: only its own intents in flight may wait for a timeout (rule 9). */
  readonly incarnation: string
  /** The incarnations alive when the rows were read; an intent of any other one is abandoned (rule 9). */
  readonly alive: ReadonlySet<string>
}

/** Why a row is being deleted. */
export type DeleteReason =
  | "stuck" // never became healthy within stuckTimeout
  | "dead" // the platform reports it failed, crashed or removed
  | "orphan" // its service is gone from a complete listing
  | "requested" // marked `deleting` by drain, kill or dismiss
  | "rollout" // made from an old template, and replaced by a new one (rule 10)
  | "surplus" // idle beyond the autoscaling target

/** Why a service without a row of its own is destroyed. */
export type RemoveReason =
  | "duplicate" // a row has its name and points at another service (or another unowned service of that name is adopted)
  | "unadoptable" // adoption kept failing (rule 12): a service without a row does not outlive the grace

export type CrashReason =
  | "dead" // the platform reports it failed, crashed or removed
  | "vanished" // its service is gone from a complete listing
  | "claim-timeout" // stuck in `claiming`: the outcome of the claim is unknown
  | "claim-abandoned" // `claiming` for a process that is gone, or for no claim of this one: the outcome is unknown

/** One step of a plan. Each carries the status it expects, so apply can compare-and-set. */
export type Action = Data.TaggedEnum<{
  /** Make a new instance: row (`creating`) → credentials → service → `starting`. */
  Create: { readonly reason: "fill" | "rollout" | "requested" }
  /** A prefixed service with no row: insert one. */
  Adopt: { readonly service: ServiceInfo }
  /**
   * Destroy a service that no row will ever own (no intent row: nothing to record first; a crash leaves the
   * service listed, and the next pass plans this again): a `duplicate` of a row's service (same name, other id:
   * a dead run's create that landed after its row was finished), or one that could not be adopted.
   */
  RemoveService: { readonly service: ServiceInfo; readonly reason: RemoveReason }
  /** An abandoned `creating` row whose service was deployed (every step done but the record): → `starting`. */
  RecordService: { readonly id: string; readonly service: ServiceInfo }
  /**
   * An abandoned `creating` row whose service is missing or never deployed: credentials issued again, the
   * provider's idempotent create completes the service (or makes it), then → `starting`.
   */
  FinishCreate: { readonly id: string }
  /**
   * `starting` → `idle`: deploy succeeded and `/pool/health` says ready. The URL is the one the platform shows now
   * (a Pod's address is known only once it runs), so an idle row is never claimed without one.
   */
  MarkIdle: {
    readonly id: string
    readonly deployStatus: string | null
    readonly url: string | null
    /** The version the runtime reported with its ready answer, recorded in the row's attributes. */
    readonly runtimeVersion?: string | undefined
  }
  /** The platform's deploy status or URL changed: record it, status unchanged. */
  Refresh: {
    readonly id: string
    readonly status: InstanceStatus
    readonly deployStatus: string | null
    readonly url: string | null
  }
  /** A claimed (or claiming) instance died or vanished. Crashed rows stay until dismissed. */
  MarkCrashed: { readonly id: string; readonly from: InstanceStatus; readonly reason: CrashReason }
  /** Remove an unclaimed instance: → `deleting`, release credentials, destroy the service, drop the row. */
  Delete: {
    readonly id: string
    readonly from: InstanceStatus
    readonly serviceId: string | null
    readonly reason: DeleteReason
  }
}>
export const Action = Data.taggedEnum<Action>()
export type ActionKind = Action["_tag"]
export const actionKinds: ReadonlyArray<ActionKind> = [
  "Create",
  "Adopt",
  "RemoveService",
  "RecordService",
  "FinishCreate",
  "MarkIdle",
  "Refresh",
  "MarkCrashed",
  "Delete"
]

/** What one pass did. */
export interface PassSummary {
  readonly pass: number
  readonly startedAt: Date
  readonly durationMs: number
  /** `recent` when a refill-only pass reused an earlier listing; `skipped` when this replica did not lead the pass. */
  readonly listing: "complete" | "recent" | "failed" | "skipped"
  /** Actions planned, by kind. */
  readonly planned: { readonly [K in ActionKind]: number }
  /** Actions that failed, by kind (retried by a later pass). */
  readonly failed: { readonly [K in ActionKind]: number }
  /** One line per failure, secrets never included. */
  readonly errors: ReadonlyArray<string>
  /** False when this replica is not the leader and the pass applied nothing. */
  readonly applied: boolean
}

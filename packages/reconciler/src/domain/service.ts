import { Schema } from "effect"

/** Railway's `DeploymentStatus` enum; other providers map their states onto it. */
export const DeployStatus = Schema.Literal(
  "BUILDING",
  "CRASHED",
  "DEPLOYING",
  "FAILED",
  "INITIALIZING",
  "NEEDS_APPROVAL",
  "QUEUED",
  "REMOVED",
  "REMOVING",
  "SKIPPED",
  "SLEEPING",
  "SUCCESS",
  "WAITING"
)
export type DeployStatus = typeof DeployStatus.Type

/**
 * What a deploy status means to the pool.
 * - `running`: the service is up; health decides whether it is ready.
 * - `starting`: on its way up (or an unknown/absent status: never a reason to destroy).
 * - `sleeping`: the platform put an idle service to sleep. Not death: it wakes on the next request.
 * - `dead`: it will not come back by itself.
 */
export type DeployPhase = "running" | "starting" | "sleeping" | "dead"

export const deployPhase = (status: string | null): DeployPhase => {
  switch (status) {
    case "SUCCESS":
      return "running"
    case "SLEEPING":
      return "sleeping"
    case "FAILED":
    case "CRASHED":
    case "REMOVED":
    case "REMOVING":
    case "SKIPPED":
      return "dead"
    default:
      return "starting"
  }
}

/** A service as the compute provider lists it. */
export class ServiceInfo extends Schema.Class<ServiceInfo>("ServiceInfo")({
  serviceId: Schema.String,
  name: Schema.String,
  /** Public base URL (`https://…`), when the service has one. */
  url: Schema.NullOr(Schema.String),
  /** Latest deployment's status; free text so an unknown value from the platform is not a crash. */
  deployStatus: Schema.NullOr(Schema.String),
  image: Schema.NullOr(Schema.String),
  createdAt: Schema.DateFromSelf,
  /** What the provider keeps on the instance's row to find what it made (e.g. the project it lives in). */
  handles: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
}) {}

/** What `ComputeProvider.create` is asked to make. */
export interface CreateServiceRequest {
  readonly name: string
  readonly image: string
  readonly env: Readonly<Record<string, string>>
  /** The pool the service is made for, and the hash of its template: for platforms that label what they run. */
  readonly pool?: string
  readonly templateHash?: string
}

/** What `ComputeProvider.create` made. */
export interface CreatedService {
  readonly serviceId: string
  readonly url: string | null
  readonly deployStatus: string | null
  /** Recorded in the row's handles, under the provider's own keys (e.g. its project and volume). */
  readonly handles?: Readonly<Record<string, string>>
}

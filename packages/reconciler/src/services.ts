/**
 * The services the reconciler talks through. Each is a small interface with one Layer per
 * implementation (Railway, Postgres, HTTP, in-memory …). Contracts are checked by the conformance
 * suites in `@warmpool/reconciler/testing`, run against every implementation.
 */
import { Context, type Duration, type Effect, type Option, type Schema, type Stream } from "effect"
import type {
  ConflictError,
  ProviderError,
  ProvisionError,
  StaleStatusError,
  StoreError
} from "./errors.js"
import type { Instance, InstancePatch, InstanceStatus, StatusCounts, StringMap } from "./domain/instance.js"
import type { ProbeAnswer } from "./domain/observation.js"
import type { CreatedService, CreateServiceRequest, ServiceInfo } from "./domain/service.js"

/** Where instances run (Crossplane-style Observe/Create/Delete, every call idempotent). */
export class ComputeProvider extends Context.Tag("@warmpool/reconciler/ComputeProvider")<
  ComputeProvider,
  {
    /** Every service whose name starts with `namePrefix`: the complete list, or a failure. Never a partial list. */
    readonly list: (namePrefix: string) => Effect.Effect<ReadonlyArray<ServiceInfo>, ProviderError>
    /** Creates a service. If one with this name exists already, returns it instead of making a twin. */
    readonly create: (request: CreateServiceRequest) => Effect.Effect<CreatedService, ProviderError>
    /** Destroys a service. One that is already gone counts as destroyed. */
    readonly destroy: (serviceId: string) => Effect.Effect<void, ProviderError>
    /**
     * How long a pass that only refills should wait first, so that the creates of several claims share the
     * platform's requests (its API budget runs low). Absent or zero: at once.
     */
    readonly refillDelay?: Effect.Effect<Duration.Duration>
  }
>() {}

/** A compare-and-set on a row's status: applied only if the row is still in one of `from`. */
export interface Transition {
  readonly id: string
  readonly from: ReadonlyArray<InstanceStatus>
  readonly to: InstanceStatus
  readonly patch?: InstancePatch
}

/** The rows: single source of truth and coordination point. */
export class InstanceStore extends Context.Tag("@warmpool/reconciler/InstanceStore")<
  InstanceStore,
  {
    /** All rows of a pool, oldest first. Rows with a status this version does not know are reported and left out. */
    readonly list: (pool: string) => Effect.Effect<ReadonlyArray<Instance>, StoreError>
    readonly get: (id: string) => Effect.Effect<Option.Option<Instance>, StoreError>
    /** Inserts a new row; an existing id, name or service id is a conflict. */
    readonly insert: (row: Instance) => Effect.Effect<void, StoreError | ConflictError>
    /** One compare-and-set. Fails with `StaleStatusError` when the row is not in `from` (or gone). */
    readonly transition: (change: Transition) => Effect.Effect<Instance, StoreError | StaleStatusError>
    /** Many compare-and-sets in few round trips. Returns the ids that applied; the others were stale. */
    readonly transitionMany: (
      changes: ReadonlyArray<Transition>
    ) => Effect.Effect<ReadonlyArray<string>, StoreError>
    /**
     * Atomically moves the `count` (default 1) newest idle rows of `pool` to `claiming` and returns them,
     * newest first (the freshest image, the least-aged container); fewer when fewer are idle. No double claims, ever. `claimer` (an incarnation) is recorded
     * in each row's `intentBy`, so that a claim its process never finished is known as abandoned (rule 9).
     * Rows whose id is in `exclude` (protected instances) are never taken.
     */
    readonly claimIdle: (
      pool: string,
      count?: number,
      claimer?: string | null,
      exclude?: ReadonlyArray<string>
    ) => Effect.Effect<ReadonlyArray<Instance>, StoreError>
    /** Deletes the row if it is in `from`. Returns whether a row was deleted. */
    readonly remove: (id: string, from: ReadonlyArray<InstanceStatus>) => Effect.Effect<boolean, StoreError>
    readonly counts: (pool: string) => Effect.Effect<StatusCounts, StoreError>
  }
>() {}

/**
 * Which replica reconciles. Claims are served by every replica; passes only by the leader.
 * Store writes made inside `whileLeader` are fenced: none lands once another replica has taken over.
 */
export class Leadership extends Context.Tag("@warmpool/reconciler/Leadership")<
  Leadership,
  {
    /** Runs `effect` if this replica leads the pool, `None` if another one does. */
    readonly whileLeader: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<Option.Option<A>, E, R>
    /**
     * Whether this replica leads: the current value, then every change. The controller runs a pass the
     * moment it starts leading, so a failover does not wait for the next tick.
     */
    readonly leading: Stream.Stream<boolean>
  }
>() {}

/**
 * Which runs of the server are alive. Each run (an incarnation) stamps the intents it starts (`intentBy`); a
 * leader resolves the intents of an incarnation that is gone at once (rule 9) instead of after a timeout.
 */
export class Incarnations extends Context.Tag("@warmpool/reconciler/Incarnations")<
  Incarnations,
  {
    /** This run's id, stamped on every intent row it writes. */
    readonly self: string
    /** The incarnations alive now, this one included. */
    readonly alive: Effect.Effect<ReadonlySet<string>, StoreError>
  }
>() {}

/**
 * `GET {url}/pool/health`. Never fails: an instance that does not answer is `unreachable`. A runtime that says its
 * version is answered with it; the row keeps it when the instance turns idle.
 */
export class HealthProbe extends Context.Tag("@warmpool/reconciler/HealthProbe")<
  HealthProbe,
  {
    readonly check: (target: { readonly id: string; readonly url: string }) => Effect.Effect<ProbeAnswer>
  }
>() {}

/**
 * Secrets issued for one instance: environment for the service, and the handles the issuer needs to release them
 * later, under keys of its own (they are merged into the row's `handles`).
 */
export interface IssuedCredentials {
  readonly env: Readonly<Record<string, string>>
  readonly handles: StringMap
}

/** Per-instance secrets (an API key, an inbox): issued before a create, released on every delete. */
export class Credentials extends Context.Tag("@warmpool/reconciler/Credentials")<
  Credentials,
  {
    /** Issues the instance's credentials. Retrying for the same instance must not leak a second one. */
    readonly issue: (instance: Instance) => Effect.Effect<IssuedCredentials, ProviderError>
    /** Releases them; idempotent, and works for rows that lack the recorded handles (found by name). */
    readonly release: (instance: Instance) => Effect.Effect<void, ProviderError>
  }
>() {}

/**
 * What an instance does when it is claimed, in its own terms: the claim's request and result are the runtime's
 * types. A browser pool's claim might take a start URL and answer a CDP endpoint; a Convos agent's takes a name
 * and instructions and answers a conversation.
 */
export interface Runtime<Request, Result> {
  /** What a claim carries. The controller validates every claim against it (its Type side) before taking an instance. */
  readonly request: Schema.Schema<Request, any>
  /** The claim-time call to the instance. Bounded by the controller's provision timeout. */
  readonly provision: (instance: Instance, request: Request) => Effect.Effect<Result, ProvisionError>
  /** What the claimed row keeps of the claim (merged into its `attributes`). None when absent. */
  readonly attributes?: (request: Request, result: Result) => StringMap
  /**
   * Whether the provisioned instance is bound now (`claimed`, the default) or awaits the other side's acceptance
   * (`pending_acceptance`: bound all the same, until the runtime reports the outcome).
   */
  readonly boundAs?: (result: Result) => ClaimedStatus
}

/** The statuses a successful claim leaves a row in. */
export type ClaimedStatus = "claimed" | "pending_acceptance"

/** The runtime of the pool's instances (a `Runtime` of whatever request and result it has). */
export class InstanceRuntime extends Context.Tag("@warmpool/reconciler/InstanceRuntime")<
  InstanceRuntime,
  // Of any types: `Controller.makeFor(spec, runtime)` gives a controller typed by its runtime.
  Runtime<any, any>
>() {}

/** What a redeploy puts a service on: the pool's current template (per-instance variables are kept). */
export interface RedeployRequest {
  readonly image: string
  readonly env: Readonly<Record<string, string>>
}

/**
 * Redeploys an existing service onto a new template: the image, and the template's variables set over the
 * ones it has. A capability apart from `ComputeProvider`: a platform that cannot do it simply offers none.
 */
export class ServiceUpgrader extends Context.Tag("@warmpool/reconciler/ServiceUpgrader")<
  ServiceUpgrader,
  {
    readonly redeploy: (serviceId: string, request: RedeployRequest) => Effect.Effect<void, ProviderError>
    /** A fresh deployment of what the service runs now (same image, same variables): a new container. */
    readonly restart: (serviceId: string) => Effect.Effect<void, ProviderError>
  }
>() {}

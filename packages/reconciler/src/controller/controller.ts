import { Context, Data, type Duration, Effect, Layer, type Option } from "effect"
import type {
  ClaimFailedError,
  InvalidClaimError,
  NoIdleInstanceError,
  NotFoundError,
  ProtectedInstanceError,
  ProvisionRejectedError,
  SpecChangeError,
  StaleStatusError,
  StoreError
} from "../errors.js"
import type { Instance } from "../domain/instance.js"
import type { Action, PassSummary } from "../domain/observation.js"
import type { PoolSpec } from "../domain/pool-spec.js"
import type { SizingDecision } from "../sizing/sizing.js"
import { InstanceRuntime, type Runtime } from "../services.js"
import type { StuckAction } from "./failing.js"
import { type ControllerOptions, type ControllerRequirements, make } from "./make.js"

/** A claim's outcome: what the runtime answered, and the row, now `claimed`. */
export interface ClaimResult<Result = unknown> {
  readonly result: Result
  readonly instance: Instance
}

/** How far a claim is: in line (1 = next), holding an instance, provisioning it (the runtime's claim-time call). */
export type ClaimProgress = Data.TaggedEnum<{
  Queued: { readonly position: number }
  Claimed: { readonly instanceId: string }
  Provisioning: { readonly instanceId: string }
}>
export const ClaimProgress = Data.taggedEnum<ClaimProgress>()

export interface ClaimOptions {
  /**
   * When nothing is idle, wait up to this long (ms, at most 120,000) for an instance, first come first served,
   * asking the pool for one more. 0 or absent: fail at once with `NoIdleInstanceError`.
   */
  readonly waitMs?: number | undefined
  /** Hears the claim's progress as it happens. */
  readonly onProgress?: ((progress: ClaimProgress) => Effect.Effect<void>) | undefined
}

export type ClaimError = InvalidClaimError | NoIdleInstanceError | ClaimFailedError | ProvisionRejectedError | StoreError

/**
 * One pool's reconcile loop and the operations on it (a controller-runtime `Reconciler`, plus claims).
 * Passes never overlap; triggers coalesce. `Request` and `Result` are the pool runtime's claim types.
 */
export interface ControllerService<Request = unknown, Result = unknown> {
  /** The pool's spec as it is now (see `updateSpec`). */
  readonly spec: PoolSpec
  /**
   * Changes the spec live: sizes apply at the next pass (triggered now), a new template (image, env) starts a
   * rollout. The name and namePrefix cannot change (`SpecChangeError`).
   */
  readonly updateSpec: (next: PoolSpec) => Effect.Effect<void, SpecChangeError>
  /** Instances never claimed, killed, drained, rolled out or deleted (PROTECTED_INSTANCES). */
  readonly protectedIds: ReadonlySet<string>
  /** Runs a pass now (after the one in progress, if any) and returns its summary. */
  readonly runPass: Effect.Effect<PassSummary>
  /** Asks for a pass soon and returns at once. A burst of triggers gives one extra pass. */
  readonly trigger: Effect.Effect<void>
  /**
   * Asks for a pass that may only need to refill (after a claim, a deploy): it plans from the rows and reuses a
   * recent complete listing, so it costs the platform nothing; nothing destructive follows from it (rule 2).
   */
  readonly triggerRefill: Effect.Effect<void>
  /** Probes the `starting` instances now instead of at the next readiness round (a deploy just finished). */
  readonly checkReadiness: Effect.Effect<void>
  /** Dry run: the actions the next pass would take, taking none. */
  readonly preview: Effect.Effect<ReadonlyArray<Action>, StoreError>
  /** Autoscaling's last decision and its inputs (from the last pass or dry run); none for a fixed pool. */
  readonly sizing: Effect.Effect<Option.Option<SizingDecision>>
  /** The summary of the last pass, if one ran. */
  readonly lastPass: Effect.Effect<Option.Option<PassSummary>>
  /** Actions failing pass after pass, backing off (rule 12), with the reason of their last failure. */
  readonly stuck: Effect.Effect<ReadonlyArray<StuckAction>>
  /** Claims the oldest idle instance (waiting for one if asked to) and provisions it; triggers a pass at once (backfill). */
  readonly claim: (request: Request, options?: ClaimOptions) => Effect.Effect<ClaimResult<Result>, ClaimError>
  /** Runs a pass that creates `count` instances beyond what the pool needs (capped by maxTotal). */
  readonly replenish: (count?: number) => Effect.Effect<PassSummary>
  /** Marks up to `count` idle instances `deleting` (atomically: never a claimed one, never a protected one) and runs a pass. */
  readonly drain: (count: number) => Effect.Effect<ReadonlyArray<string>, StoreError>
  /** Kills an instance in any status but `deleting` (operator action): → `deleting`, then a pass removes it. */
  readonly kill: (id: string) => Effect.Effect<Instance, StoreError | StaleStatusError | NotFoundError | ProtectedInstanceError>
  /** Dismisses a `crashed` or `tainted` instance: → `deleting`, then a pass removes it and its credentials. */
  readonly dismiss: (id: string) => Effect.Effect<Instance, StoreError | StaleStatusError | NotFoundError | ProtectedInstanceError>
  /**
   * A graceful stop: no new pass, create or claim (claims fail with NoIdleInstanceError); waits up to `grace`
   * for the pass and the claims in flight. What is still unfinished stays an intent the next leader resolves.
   * Call it before closing the controller's scope (the server does, on SIGTERM); closing alone interrupts.
   */
  readonly stop: (grace: Duration.DurationInput) => Effect.Effect<void>
}

/** The Controller of a pool, as a service (its claims untyped: each request is validated against the runtime's schema). */
export class Controller extends Context.Tag("@warmpool/reconciler/Controller")<Controller, ControllerService>() {
  /**
   * A controller for `spec` on the `InstanceRuntime` in context; its passes run in the background for the scope's
   * lifetime. Its claims take any request, checked against the runtime's schema as they come.
   */
  static readonly make = (spec: PoolSpec, options?: ControllerOptions) => make<unknown, unknown>(spec, options)
  /** A controller for `spec` on `runtime`, its claims typed by the runtime's request and result. */
  static readonly makeFor = <Request, Result>(spec: PoolSpec, runtime: Runtime<Request, Result>, options?: ControllerOptions) =>
    make<Request, Result>(spec, options).pipe(Effect.provideService(InstanceRuntime, runtime))
  /** The Controller of one pool, its passes running for the layer's lifetime. */
  static readonly layer = (spec: PoolSpec, options?: ControllerOptions): Layer.Layer<Controller, never, ControllerRequirements> =>
    Layer.scoped(Controller, make(spec, options))
}

export type { ControllerOptions, ControllerRequirements }

/**
 * The Controller: observe → plan → apply, one pass at a time, on a timer and on demand.
 * Level-triggered like controller-runtime: every pass looks at the whole world, so a missed
 * trigger or a crashed pass costs latency, never correctness.
 */
import { Clock, Duration, Effect, Metric, Option, Queue, Ref, type Scope, Stream } from "effect"
import { dismissableStatuses, type Instance, instanceStatuses } from "../domain/instance.js"
import { type Action, actionKinds, type ActionKind, Listing, type Observation, type PassSummary } from "../domain/observation.js"
import type { PoolSpec } from "../domain/pool-spec.js"
import type { ServiceInfo } from "../domain/service.js"
import { NoIdleInstanceError, NotFoundError, ProtectedInstanceError, SpecChangeError } from "../errors.js"
import { isOutdated } from "../domain/template.js"
import { initialCreateAllowance, nextCreateAllowance, plan, probeTargets } from "../plan/plan.js"
import { currentTemplate } from "../plan/rollout.js"
import { ComputeProvider, Credentials, HealthProbe, Incarnations, InstanceRuntime, InstanceStore, Leadership } from "../services.js"
import { describeError, errorKind, makeApplier } from "./apply.js"
import { makeAutoscaler, sizingPolicy } from "./autoscaler.js"
import { makeClaim } from "./claim.js"
import { makeFailingActions } from "./failing.js"
import { makeReadiness } from "./readiness.js"
import type { ClaimOptions, ControllerService } from "./controller.js"
import * as metrics from "./metrics.js"
import { makeWaitingRoom } from "./waiting.js"

export interface ControllerOptions {
  /** Time between passes when nothing triggers one. Default 30 s (the seed's TICK_INTERVAL_MS). */
  readonly tickInterval?: Duration.DurationInput
  /** Actions and health probes in flight at once. Default 8. */
  readonly concurrency?: number
  /** A listing slower than this is a failed observation. Default 20 s. */
  readonly listTimeout?: Duration.DurationInput
  /** A provision slower than this has an unknown outcome. Default 60 s. */
  readonly provisionTimeout?: Duration.DurationInput
  /** Idle instances a claim may try before giving up. Default 3. */
  readonly claimAttempts?: number
  /** Time between passes while claims wait for an instance (they need the next healthy one at once). Default 2 s. */
  readonly waitingTickInterval?: Duration.DurationInput
  /** Run passes on the timer. Default true; tests drive `runPass` themselves with false. */
  readonly background?: boolean
  /** How often `starting` instances are probed between passes (background only). Default 1 s. */
  readonly readinessInterval?: Duration.DurationInput
  /** A pass that only refills (after a claim) reuses a complete listing up to this old. Default: the tick interval. */
  readonly recentListingMaxAge?: Duration.DurationInput
  /** Instances never claimed, killed, drained, rolled out or deleted (PROTECTED_INSTANCES): by id. */
  readonly protectedInstances?: ReadonlyArray<string>
}

export type ControllerRequirements =
  | ComputeProvider
  | InstanceStore
  | HealthProbe
  | Credentials
  | InstanceRuntime
  | Leadership
  | Incarnations

/** Claims one replica serves at once, at most: far beyond what a process can keep in flight. */
const MAX_CLAIMS_IN_FLIGHT = 1_000_000

const zeroByKind = (): Record<ActionKind, number> =>
  Object.fromEntries(actionKinds.map((k) => [k, 0])) as Record<ActionKind, number>

export const make = <Request = unknown, Result = unknown>(
  declared: PoolSpec,
  options: ControllerOptions = {}
): Effect.Effect<ControllerService<Request, Result>, never, ControllerRequirements | Scope.Scope> =>
  Effect.gen(function*() {
    // The spec as it is now: `updateSpec` changes it live (sizes, image, env); each pass plans with the one it reads.
    let spec = declared
    const protectedIds: ReadonlySet<string> = new Set(options.protectedInstances ?? [])
    const compute = yield* ComputeProvider
    const store = yield* InstanceStore
    const health = yield* HealthProbe
    const leadership = yield* Leadership
    const incarnations = yield* Incarnations
    const concurrency = options.concurrency ?? 8
    const listTimeout = options.listTimeout ?? Duration.seconds(20)
    const { apply, creatingNow } = yield* makeApplier(() => spec)
    const failingActions = yield* makeFailingActions(spec)
    const tick = Duration.decode(options.tickInterval ?? Duration.seconds(30))
    const recentMaxAge = Duration.toMillis(options.recentListingMaxAge ?? tick)
    const background = options.background ?? true
    const policy = sizingPolicy(spec)
    const autoscaler = policy === undefined ? undefined : yield* makeAutoscaler(spec, policy)

    const state = yield* Ref.make({
      pass: 0,
      allowance: initialCreateAllowance(spec),
      requested: 0,
      /** The last pass created a full batch, all successfully: the pool may still be short (a scale-up). */
      fullBatch: false,
      last: Option.none<PassSummary>(),
      /** The last complete listing and when it was taken: what a refill-only pass reuses. */
      listed: Option.none<{ readonly services: ReadonlyArray<ServiceInfo>; readonly at: number }>(),
      /** Some trigger since the last pass wants a fresh listing (anything but a refill). */
      freshWanted: true
    })
    // One pass at a time, whoever asks: the timer, a trigger, an API call.
    const passLock = yield* Effect.makeSemaphore(1)
    // A graceful stop: no pass, create or claim starts once it is set; those in flight are waited for.
    const stopping = yield* Ref.make(false)
    const claimsInFlight = yield* Effect.makeSemaphore(MAX_CLAIMS_IN_FLIGHT)
    // A sliding queue of one: any number of triggers during a pass leave exactly one wake-up behind.
    const wakeups = yield* Queue.sliding<void>(1)
    const trigger = Ref.update(state, (s) => ({ ...s, freshWanted: true })).pipe(Effect.zipRight(Queue.offer(wakeups, undefined)), Effect.asVoid)
    // A pass that may only refill (after a claim): it reuses a recent complete listing instead of listing again.
    const triggerRefill = Queue.offer(wakeups, undefined).pipe(Effect.asVoid)
    const room = yield* makeWaitingRoom(spec, { trigger: triggerRefill, protectedIds })
    const readiness = background
      ? yield* makeReadiness(spec, { interval: Duration.decode(options.readinessInterval ?? Duration.seconds(1)), concurrency, onIdle: room.announceIdle })
      : undefined
    const pool = { pool: spec.name }

    /** A listing young enough for a refill-only pass, if there is one: it costs the platform nothing. */
    const recentListing = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      return Option.filter((yield* Ref.get(state)).listed, (l) => now - l.at <= recentMaxAge).pipe(
        Option.map((l) => Listing.Recent({ services: l.services, ageMs: now - l.at }))
      )
    })

    const listFresh = Effect.gen(function*() {
      const started = yield* Clock.currentTimeMillis
      return yield* compute.list(spec.namePrefix).pipe(
        Effect.timeoutFail({ duration: listTimeout, onTimeout: () => `listing timed out after ${Duration.format(listTimeout)}` }),
        Effect.tap((services) => Ref.update(state, (s) => ({ ...s, listed: Option.some({ services, at: started }) }))),
        Effect.tapError((error) => typeof error === "string" ? Effect.void : Metric.increment(Metric.tagged(metrics.providerErrors, "kind", errorKind(error)))),
        Effect.match({
          onFailure: (error) => Listing.Failed({ reason: typeof error === "string" ? error : describeError(error) }),
          onSuccess: (services) => Listing.Complete({ services })
        })
      )
    })

    /** Who is alive, asked only when a claim of another run is pending: the plan needs it for nothing else. */
    const aliveFor = (rows: ReadonlyArray<Instance>) =>
      rows.some((r) => r.status === "claiming" && r.intentBy !== null && r.intentBy !== incarnations.self)
        ? incarnations.alive
        : Effect.succeed<ReadonlySet<string>>(new Set([incarnations.self]))

    const observe = Effect.fn("Controller.observe")(function*(requestedCreates: number, fresh: boolean, dryRun = false) {
      const recent = fresh ? Option.none<Listing>() : yield* recentListing
      const [listing, [rows, alive]] = yield* Effect.all([
        Option.match(recent, { onNone: () => listFresh, onSome: Effect.succeed }),
        // Rows before the living: whoever stamped a row had registered before it, so it is listed unless dead.
        Effect.flatMap(store.list(spec.name), (rows) => Effect.map(aliveFor(rows), (alive) => [rows, alive] as const))
      ], { concurrency: 2 })
      const targets = probeTargets(spec, listing, rows)
      const probed = yield* Effect.forEach(targets, (t) => Effect.map(health.check(t), (h) => [t.id, h] as const), { concurrency })
      const { allowance } = yield* Ref.get(state)
      const now = yield* Clock.currentTimeMillis
      const sizing = autoscaler === undefined ? undefined : yield* autoscaler.size(rows, now, !dryRun)
      const observation: Observation = {
        listing,
        rows,
        health: new Map(probed),
        now,
        createAllowance: allowance,
        requestedCreates,
        waitingClaims: yield* room.demand,
        ...(sizing === undefined ? {} : { warmTarget: sizing.target }),
        backoff: yield* failingActions.backoffs,
        ownCreatesInFlight: yield* creatingNow,
        ownClaimsInFlight: yield* claims.settling,
        incarnation: incarnations.self,
        alive,
        protectedIds
      }
      return observation
    })

    const recordInstances = (observation: Observation, actions: ReadonlyArray<Action>) => {
      const template = currentTemplate(spec)
      // Counts as they will be after this pass's status changes, approximately: gauges are for dashboards.
      const counts = Object.fromEntries(instanceStatuses.map((s) => [s, 0])) as Record<string, number>
      for (const row of observation.rows) counts[row.status]!++
      counts.creating! += actions.filter((a) => a._tag === "Create").length
      const old = observation.rows.filter((row) => row.status !== "deleting" && isOutdated(row, template)).length
      return Effect.forEach(instanceStatuses, (status) =>
        Metric.set(metrics.instances.pipe(Metric.tagged("pool", spec.name), Metric.tagged("status", status)), counts[status]!)).pipe(
          Effect.zipRight(Metric.set(Metric.tagged(metrics.outdated, "pool", spec.name), old))
        )
    }

    const onePass = (fresh: boolean) => Effect.gen(function*() {
      const started = yield* Clock.currentTimeMillis
      // `fullBatch` is this pass's to set: a pass that leads nothing (standby) must not trigger another.
      const { pass, requested } = yield* Ref.updateAndGet(state, (s) => ({ ...s, pass: s.pass + 1, fullBatch: false }))
      const planned = zeroByKind()
      const failed = zeroByKind()
      const errors: Array<string> = []

      const work = Effect.gen(function*() {
        const observation = yield* observe(requested, fresh)
        const actions = plan(spec, observation)
        for (const action of actions) planned[action._tag]++
        const outcomes = yield* apply(actions, observation.rows, { concurrency, stopping: Ref.get(stopping) })
        yield* failingActions.record(yield* Clock.currentTimeMillis, outcomes)
        for (const outcome of outcomes) {
          if (outcome.error === undefined) continue
          failed[outcome.action._tag]++
          errors.push(`${outcome.action._tag}${"id" in outcome.action ? ` ${outcome.action.id}` : ""}: ${describeError(outcome.error)}`)
          yield* Metric.increment(Metric.tagged(metrics.providerErrors, "kind", errorKind(outcome.error)))
        }
        // Waiting claims, here and on other replicas, take what became idle now rather than at their deadline.
        if (outcomes.some((o) => o.error === undefined && (o.action._tag === "MarkIdle" || o.action._tag === "Adopt"))) yield* room.announceIdle
        const creates = outcomes.filter((o) => o.action._tag === "Create")
        const requestedDone = actions.filter((a) => a._tag === "Create" && a.reason === "requested").length
        yield* Ref.update(state, (s) => ({
          ...s,
          allowance: nextCreateAllowance(spec, s.allowance, { attempted: creates.length, failed: creates.filter((o) => o.error !== undefined).length }),
          requested: Math.max(0, s.requested - requestedDone),
          fullBatch: creates.length >= spec.createBatch && creates.every((o) => o.error === undefined)
        }))
        yield* recordInstances(observation, actions)
        if (readiness !== undefined && (actions.some((a) => a._tag === "Create") || observation.rows.some((r) => r.status === "starting"))) {
          yield* readiness.expect
        }
        return listingOutcome[observation.listing._tag]
      })

      // A stopping controller leads nothing more: the next leader resolves what it left (rule 9).
      const lead = Effect.flatMap(Ref.get(stopping), (stopped) => stopped ? Effect.succeedNone : leadership.whileLeader(work))
      const led = yield* lead.pipe(
        Effect.catchAll((error) => {
          // The store failed while observing: nothing was planned, the next pass tries again.
          errors.push(`observe: ${describeError(error)}`)
          return Effect.as(Metric.increment(Metric.tagged(metrics.providerErrors, "kind", errorKind(error))), Option.some("failed" as const))
        })
      )
      const durationMs = (yield* Clock.currentTimeMillis) - started
      const summary: PassSummary = {
        pass,
        startedAt: new Date(started),
        durationMs,
        listing: Option.getOrElse(led, () => "skipped" as const),
        planned,
        failed,
        errors,
        applied: Option.isSome(led)
      }
      yield* Ref.update(state, (s) => ({ ...s, last: Option.some(summary) }))
      const outcome = !summary.applied ? "standby" : errors.length > 0 || summary.listing === "failed" ? "degraded" : "ok"
      yield* Metric.increment(Metric.tagged(metrics.passes, "outcome", outcome))
      yield* Metric.update(metrics.passDuration, durationMs / 1000)
      for (const kind of actionKinds) {
        if (planned[kind] > 0) yield* Metric.incrementBy(Metric.tagged(metrics.actionsPlanned, "kind", kind), planned[kind])
        if (failed[kind] > 0) yield* Metric.incrementBy(Metric.tagged(metrics.actionsFailed, "kind", kind), failed[kind])
      }
      // One line per pass: a warning when something failed, info when it acted, debug when it did nothing.
      const acted = actionKinds.some((kind) => planned[kind] > 0)
      const log = errors.length > 0 ? Effect.logWarning : acted ? Effect.logInfo : Effect.logDebug
      yield* log(`pass ${pass}: ${describePlanned(planned)}${errors.length > 0 ? `; ${errors.length} failed (${errors.join("; ")})` : ""} in ${durationMs} ms`).pipe(
        Effect.annotateLogs({ pool: spec.name, pass, listing: summary.listing, outcome })
      )
      return summary
    }).pipe(Effect.withSpan("Controller.pass", { attributes: pool }))

    const runPass = passLock.withPermits(1)(onePass(true))
    // Creates the batch could not take this pass (requested, or a target far above the pool): go again without
    // waiting for the tick. A failed create ends the streak: slow start sets the pace then.
    const continueRequested = Effect.flatMap(Ref.get(state), (s) => (s.requested > 0 || s.fullBatch ? triggerRefill : Effect.void))

    if (background) {
      const waitingTick = Duration.min(tick, Duration.decode(options.waitingTickInterval ?? Duration.seconds(2)))
      // First pass at once; then whenever triggered, or after a tick of quiet (a tick always lists). While claims
      // wait, a short quiet gives a refill-only pass: it finds what became ready without a listing.
      yield* Queue.offer(wakeups, undefined)
      const quiet = Effect.flatMap(room.demand, (waiting) => waiting > 0 ? Effect.as(Effect.sleep(waitingTick), false) : Effect.as(Effect.sleep(tick), true))
      const loop = Effect.raceFirst(Effect.as(Queue.take(wakeups), false), quiet).pipe(
        Effect.flatMap((ticked) =>
          Effect.gen(function*() {
            // A refill can wait for the platform's sake (a tight API budget): claims meanwhile share its creates.
            if (!ticked && !(yield* Ref.get(state)).freshWanted && compute.refillDelay !== undefined) {
              yield* Effect.flatMap(compute.refillDelay, Effect.sleep)
            }
            // The pass about to observe covers every trigger so far.
            yield* Queue.takeAll(wakeups)
            const { freshWanted } = yield* Ref.getAndUpdate(state, (s) => ({ ...s, freshWanted: false }))
            return ticked || freshWanted
          })
        ),
        Effect.flatMap((fresh) => passLock.withPermits(1)(onePass(fresh))),
        Effect.zipRight(continueRequested),
        Effect.zipRight(Ref.get(stopping)),
        Effect.repeat({ until: (stopped) => stopped })
      )
      yield* Effect.forkScoped(loop)
      // A replica that starts leading (a failover, a released lease) passes at once, not a tick later.
      yield* Effect.forkScoped(Stream.runForEach(Stream.filter(leadership.leading, (leads) => leads), () => trigger))
    }

    const claims = yield* makeClaim<Request, Result>(spec, {
      attempts: options.claimAttempts ?? 3,
      timeout: options.provisionTimeout ?? Duration.seconds(60),
      trigger: triggerRefill,
      room,
      protectedIds
    })
    const refuseWhileStopping = Effect.flatMap(Ref.get(stopping), (stopped) =>
      stopped ? new NoIdleInstanceError({ pool: spec.name, message: "this server is shutting down; another replica (or its successor) serves claims" }) : Effect.void)
    // Checked before the permit (answer at once) and again with it (a claim that queued while a stop began).
    // A claim already waiting in line is answered by the stop (`room.close`), as at its deadline.
    // Every valid claim counts as an arrival for autoscaling, served or missed; an invalid one counts for nothing.
    const arrival = autoscaler === undefined ? Effect.void : Effect.flatMap(Clock.currentTimeMillis, autoscaler.recordArrival)
    const claim = (input: Request, claimOptions?: ClaimOptions) =>
      Effect.flatMap(claims.check(input), (request) =>
        arrival.pipe(
          Effect.zipRight(refuseWhileStopping),
          Effect.zipRight(claimsInFlight.withPermits(1)(Effect.zipRight(refuseWhileStopping, claims.claim(request, claimOptions))))
        ))

    const stop = (grace: Duration.DurationInput) =>
      Effect.gen(function*() {
        if (yield* Ref.getAndSet(stopping, true)) return
        yield* room.close
        // Every permit, once: the pass and the claims in flight are done. Whatever queued behind sees `stopping`.
        const drained = yield* Effect.all([passLock.withPermits(1)(Effect.void), claimsInFlight.withPermits(MAX_CLAIMS_IN_FLIGHT)(Effect.void)], {
          concurrency: 2
        }).pipe(Effect.timeoutTo({ duration: grace, onSuccess: () => true, onTimeout: () => false }))
        yield* drained
          ? Effect.log("stopped: nothing left in flight")
          : Effect.logWarning(`stopped after ${Duration.format(grace)} with work in flight: the next leader finishes what it left`)
      }).pipe(Effect.annotateLogs({ pool: spec.name }))

    const refuseProtected = (id: string, what: string) =>
      protectedIds.has(id)
        ? Effect.fail(new ProtectedInstanceError({ id, message: `instance ${id} is protected (PROTECTED_INSTANCES): it cannot be ${what}` }))
        : Effect.void

    const kill = (id: string, from: ReadonlyArray<(typeof instanceStatuses)[number]>) =>
      Effect.gen(function*() {
        yield* refuseProtected(id, "killed or dismissed")
        const row = yield* store.get(id)
        if (Option.isNone(row)) {
          return yield* new NotFoundError({ operation: "controller.kill", message: `no instance ${id}` })
        }
        const marked = yield* store.transition({ id, from, to: "deleting", patch: { intentBy: incarnations.self } })
        yield* trigger
        return marked
      })

    const service: ControllerService<Request, Result> = {
      get spec() {
        return spec
      },
      updateSpec: (next) =>
        next.name !== spec.name || next.namePrefix !== spec.namePrefix
          ? Effect.fail(new SpecChangeError({ pool: spec.name, message: `pool ${spec.name}: its name and namePrefix cannot change while it runs` }))
          : Effect.sync(() => {
            spec = next
          }).pipe(Effect.zipRight(trigger)),
      protectedIds,
      runPass,
      trigger,
      triggerRefill,
      checkReadiness: readiness?.nudge ?? Effect.void,
      preview: observe(0, true, true).pipe(
        Effect.zip(Ref.get(state)),
        Effect.map(([observation, s]) => plan(spec, { ...observation, requestedCreates: s.requested }))
      ),
      lastPass: Ref.get(state).pipe(Effect.map((s) => s.last)),
      stuck: failingActions.stuck,
      claim,
      sizing: autoscaler === undefined ? Effect.succeed(Option.none()) : autoscaler.last,
      replenish: (count = 0) =>
        Ref.update(state, (s) => ({ ...s, requested: s.requested + Math.max(0, Math.floor(count)) })).pipe(
          Effect.zipRight(runPass),
          Effect.zipLeft(continueRequested)
        ),
      drain: (count) =>
        Effect.gen(function*() {
          const idle = (yield* store.list(spec.name)).filter((r) => r.status === "idle" && !protectedIds.has(r.id)).slice(0, Math.max(0, count))
          // Compare-and-set: an instance claimed since the listing stays claimed.
          const drained = yield* store.transitionMany(idle.map((r) => ({ id: r.id, from: ["idle"], to: "deleting", patch: { intentBy: incarnations.self } })))
          if (drained.length > 0) yield* trigger
          return drained
        }),
      kill: (id) => kill(id, instanceStatuses.filter((s) => s !== "deleting")),
      dismiss: (id) => kill(id, dismissableStatuses),
      stop
    }
    return service
  })

const listingOutcome = { Complete: "complete", Recent: "recent", Failed: "failed" } as const

const describePlanned = (planned: Record<ActionKind, number>) => {
  const parts = actionKinds.filter((k) => planned[k] > 0).map((k) => `${planned[k]} ${k}`)
  return parts.length === 0 ? "nothing to do" : parts.join(", ")
}

/**
 * Applying a plan: every action through the provider services, crash-safe (intent before effect, rule 3).
 * A failed action is reported, never thrown: the pass goes on, a later pass retries.
 */
import { Clock, Effect } from "effect"
import { randomBytes } from "node:crypto"
import { type Instance, type InstancePatch, newInstance } from "../domain/instance.js"
import type { Action } from "../domain/observation.js"
import type { PoolSpec } from "../domain/pool-spec.js"
import { templateHash } from "../domain/template.js"
import { ComputeProvider, Credentials, Incarnations, InstanceStore, type Transition } from "../services.js"

/** An error's one-line description. Errors of the services carry no secrets by contract. */
export const describeError = (error: unknown): string => {
  if (typeof error === "object" && error !== null && "_tag" in error) {
    const message = "message" in error && typeof error.message === "string" ? `: ${error.message}` : ""
    return `${String(error._tag)}${message}`
  }
  return String(error)
}

/** The kind of an error, for metrics: its tag. */
export const errorKind = (error: unknown): string =>
  typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : "Unknown"

/** Instance ids: 12 url-safe characters, like the seed's nanoids. */
const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-"
export const newInstanceId = (): string => {
  const bytes = randomBytes(12)
  let id = ""
  for (const byte of bytes) id += ALPHABET[byte & 63]
  return id
}

export interface ActionOutcome {
  readonly action: Action
  /** The error, when the action failed. Stale compare-and-sets are not failures: someone acted first. */
  readonly error?: unknown
}

/** The compare-and-set a status-only action stands for. */
export const transitionOf = (action: Action): Transition | undefined => {
  switch (action._tag) {
    case "MarkIdle":
      return {
        id: action.id,
        from: ["starting"],
        to: "idle",
        patch: {
          deployStatus: action.deployStatus,
          url: action.url,
          ...(action.runtimeVersion === undefined ? {} : { attributes: { runtimeVersion: action.runtimeVersion } })
        }
      }
    case "Refresh":
      return { id: action.id, from: [action.status], to: action.status, patch: { deployStatus: action.deployStatus, url: action.url } }
    case "MarkCrashed":
      return { id: action.id, from: [action.from], to: "crashed", patch: { lastError: `crashed: ${action.reason}` } }
    case "RecordService":
      return {
        id: action.id,
        from: ["creating"],
        to: "starting",
        patch: { serviceId: action.service.serviceId, url: action.service.url, deployStatus: action.service.deployStatus }
      }
    default:
      return undefined
  }
}

/** `specOf` gives the pool's spec as it is now: a live change (a new image) applies to the next create. */
export const makeApplier = (specOf: () => PoolSpec) =>
  Effect.gen(function*() {
    const compute = yield* ComputeProvider
    const store = yield* InstanceStore
    const credentials = yield* Credentials
    // Every intent this run writes says who wrote it, so the next leader knows at once if it was abandoned.
    const { self } = yield* Incarnations
    /** This run's creates whose call is under way: a `creating` row of ours that is not here was left by a lost pass. */
    const creating = new Set<string>()
    const tracked = <A, E, R>(id: string, effect: Effect.Effect<A, E, R>) =>
      Effect.suspend(() => {
        creating.add(id)
        return effect.pipe(Effect.ensuring(Effect.sync(() => creating.delete(id))))
      })

    /** Records why an action failed on its row, best effort: the failure itself is what gets reported. */
    const noteFailure = (row: Instance, status: Instance["status"], error: unknown) =>
      Effect.ignore(
        store.transition({ id: row.id, from: [status], to: status, patch: { lastError: describeError(error), failures: row.failures + 1 } })
      )

    /** Undo a create that failed before its service existed: release what was issued, drop the row. */
    const undoCreate = (row: Instance, error: unknown) =>
      Effect.gen(function*() {
        const marked = yield* store.transition({
          id: row.id,
          from: ["creating"],
          to: "deleting",
          patch: { lastError: describeError(error), failures: row.failures + 1, intentBy: self }
        })
        yield* credentials.release(marked)
        yield* store.remove(row.id, ["deleting"])
      }).pipe(Effect.ignore) // a leftover `deleting` row is finished by a later pass

    /** The create after its intent row: credentials, then the service, then `starting`. */
    const complete = (intent: Instance) =>
      Effect.gen(function*() {
        const spec = specOf()
        const issued = yield* credentials.issue(intent).pipe(Effect.tapError((error) => undoCreate(intent, error)))
        const row = Object.keys(issued.handles).length === 0
          ? intent
          : yield* store.transition({ id: intent.id, from: ["creating"], to: "creating", patch: { handles: issued.handles } }).pipe(
            // The handles could not be recorded: release by name and drop the intent.
            Effect.tapError((error) => undoCreate(intent, error))
          )
        const created = yield* compute.create({
          name: row.name,
          image: row.runtimeImage ?? spec.template.image,
          env: { ...spec.template.env, ...issued.env },
          pool: spec.name,
          templateHash: row.templateHash ?? templateHash(spec.template)
        }).pipe(
          Effect.tapError((error) =>
            // A transient failure (timeout, 5xx) leaves it unknown whether the service exists: keep the intent,
            // the plan finishes it once createTimeout has passed. Anything else made nothing: undo now.
            error._tag === "TransientError" ? noteFailure(row, "creating", error) : undoCreate(row, error)
          )
        )
        yield* store.transition({
          id: row.id,
          from: ["creating"],
          to: "starting",
          patch: { serviceId: created.serviceId, url: created.url, deployStatus: created.deployStatus, ...(created.handles === undefined ? {} : { handles: created.handles }) }
        })
      })

    const create = Effect.fn("Controller.create")(function*() {
      const spec = specOf()
      const id = newInstanceId()
      const now = new Date(yield* Clock.currentTimeMillis)
      const intent = newInstance({
        id,
        pool: spec.name,
        name: `${spec.namePrefix}${id}`,
        status: "creating",
        now,
        runtimeImage: spec.template.image,
        templateHash: templateHash(spec.template),
        intentBy: self
      })
      // Intent first: the row exists before anything is made, so a crash leaves something to finish.
      yield* tracked(id, Effect.zipRight(store.insert(intent), complete(intent)))
    })

    /** An abandoned create, taken over: from now on it is ours (and waits for our timeout if a call hangs). */
    const finishCreate = Effect.fn("Controller.finishCreate")(function*(action: Extract<Action, { _tag: "FinishCreate" }>) {
      const row = yield* store.transition({ id: action.id, from: ["creating"], to: "creating", patch: { intentBy: self } })
      // Credentials are issued again: a secret is shown only once, so the dead process's cannot be reused;
      // issuing replaces it (no leak), and the provider's create sets the new one before the first deploy.
      yield* tracked(row.id, complete(row))
    })

    const remove = Effect.fn("Controller.delete")(function*(
      action: Extract<Action, { _tag: "Delete" }>,
      rowsById: ReadonlyMap<string, Instance>
    ) {
      const known = rowsById.get(action.id)
      if (known === undefined) return
      // Intent first: `deleting` survives a crash, and takes the row out of every count.
      const row = action.from === "deleting"
        ? known
        : yield* store.transition({ id: action.id, from: [action.from], to: "deleting", patch: { intentBy: self } })
      const steps = Effect.gen(function*() {
        yield* credentials.release(row)
        if (action.serviceId !== null) yield* compute.destroy(action.serviceId)
        yield* store.remove(row.id, ["deleting"])
      })
      yield* steps.pipe(Effect.tapError((error) => noteFailure(row, "deleting", error)))
    })

    const adopt = Effect.fn("Controller.adopt")(function*(action: Extract<Action, { _tag: "Adopt" }>) {
      const { service } = action
      const spec = specOf()
      const suffix = service.name.slice(spec.namePrefix.length)
      const patch: InstancePatch = {
        serviceId: service.serviceId,
        url: service.url,
        deployStatus: service.deployStatus,
        runtimeImage: service.image,
        ...(service.handles === undefined ? {} : { handles: service.handles })
      }
      const row = newInstance({ id: /^[\w-]{1,64}$/.test(suffix) ? suffix : newInstanceId(), pool: spec.name, name: service.name, status: "starting", now: service.createdAt, ...patch })
      yield* store.insert(row)
    })

    /**
     * A service no row owns and none will (a duplicate, or one that cannot be adopted). There is no row to mark
     * first: if the process dies before the service is gone, the next complete listing shows it again. Its
     * credentials are not released by name, since the name is a row's: the dead run's key in its variables was
     * replaced when its row's create was finished (issuing again deletes the keys of that name).
     */
    const removeService = Effect.fn("Controller.removeService")(function*(action: Extract<Action, { _tag: "RemoveService" }>) {
      yield* compute.destroy(action.service.serviceId)
    })

    /**
     * Applies the plan: status changes in one batch, then adoptions, removed services, deletes, finished creates, and creates.
     * Creates are not started once `stopping` says so (a graceful stop); everything else runs to its end.
     */
    const apply = (
      actions: ReadonlyArray<Action>,
      rows: ReadonlyArray<Instance>,
      options: { readonly concurrency: number; readonly stopping: Effect.Effect<boolean> }
    ): Effect.Effect<ReadonlyArray<ActionOutcome>> =>
      Effect.gen(function*() {
        const rowsById = new Map(rows.map((r) => [r.id, r]))
        const batch = actions.flatMap((action) => {
          const transition = transitionOf(action)
          return transition === undefined ? [] : [{ action, transition }]
        })
        const batchOutcomes: ReadonlyArray<ActionOutcome> = batch.length === 0
          ? []
          : yield* store.transitionMany(batch.map((b) => b.transition)).pipe(
            Effect.match({
              onFailure: (error) => batch.map(({ action }) => ({ action, error })),
              onSuccess: () => batch.map(({ action }) => ({ action }))
            })
          )
        const one = (action: Action): Effect.Effect<ActionOutcome> => {
          const effect = action._tag === "Delete"
            ? remove(action, rowsById)
            : action._tag === "Create"
            ? create()
            : action._tag === "FinishCreate"
            ? finishCreate(action)
            : action._tag === "Adopt"
            ? adopt(action)
            : action._tag === "RemoveService"
            ? removeService(action)
            : Effect.void
          return effect.pipe(
            Effect.as<ActionOutcome>({ action }),
            Effect.catchTag("StaleStatusError", () => Effect.succeed<ActionOutcome>({ action })),
            Effect.catchAll((error) => Effect.succeed<ActionOutcome>({ action, error })),
            Effect.catchAllDefect((defect) => Effect.succeed<ActionOutcome>({ action, error: defect }))
          )
        }
        const phase = (tag: Action["_tag"]) =>
          Effect.forEach(actions.filter((a) => a._tag === tag), one, { concurrency: options.concurrency })
        const adopted = yield* phase("Adopt")
        const removed = yield* phase("RemoveService")
        const deleted = yield* phase("Delete")
        const finished = yield* phase("FinishCreate")
        const created = (yield* options.stopping) ? [] : yield* phase("Create")
        return [...batchOutcomes, ...adopted, ...removed, ...deleted, ...finished, ...created]
      })

    return { apply, creatingNow: Effect.sync((): ReadonlySet<string> => new Set(creating)) }
  })

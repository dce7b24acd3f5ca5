import { Clock, Context, Effect, Layer, Option, Ref } from "effect"
import { applyPatch, countByStatus, Instance, type InstanceStatus, newestFirst, oldestFirst } from "../domain/instance.js"
import { ConflictError, StaleStatusError, StoreError } from "../errors.js"
import { InstanceStore, type Transition } from "../services.js"
import { type Faults, makeFaults } from "./faults.js"

/** Fault injection and inspection for the in-memory store. */
export class InMemoryStoreControl extends Context.Tag("@warmpool/reconciler/testing/InMemoryStoreControl")<
  InMemoryStoreControl,
  Faults<StoreError> & {
    /** Every row of every pool, as stored. */
    readonly rows: Effect.Effect<ReadonlyArray<Instance>>
  }
>() {}


const make = Effect.gen(function*() {
  const table = yield* Ref.make(new Map<string, Instance>())
  const faults = yield* makeFaults<StoreError>()

  /** One compare-and-set, applied inside a `Ref.modify` so it is atomic against every other call. */
  const applyTransition = (rows: Map<string, Instance>, change: Transition, now: number): Instance | undefined => {
    const row = rows.get(change.id)
    if (row === undefined || !change.from.includes(row.status)) return undefined
    // Validated, as a database's column types would: a malformed patch fails here, not later.
    const next = new Instance({
      ...applyPatch(row, change.patch),
      status: change.to,
      statusChangedAt: change.to === row.status ? row.statusChangedAt : new Date(now)
    })
    rows.set(row.id, next)
    return next
  }

  const store: Context.Tag.Service<InstanceStore> = {
    list: (pool) =>
      faults.guard("list").pipe(
        Effect.zipRight(Ref.get(table)),
        Effect.map((rows) => [...rows.values()].filter((r) => r.pool === pool).sort(oldestFirst))
      ),
    get: (id) => faults.guard("get").pipe(Effect.zipRight(Ref.get(table)), Effect.map((rows) => Option.fromNullable(rows.get(id)))),
    insert: (row) =>
      faults.guard("insert").pipe(
        Effect.zipRight(
          Ref.modify(table, (rows) => {
            const clash = [...rows.values()].find(
              (r) => r.id === row.id || r.name === row.name || (row.serviceId !== null && r.serviceId === row.serviceId)
            )
            if (clash !== undefined) return [Option.some(clash), rows] as const
            return [Option.none(), new Map(rows).set(row.id, row)] as const
          })
        ),
        Effect.flatMap(Option.match({
          onNone: () => Effect.void,
          onSome: (clash) =>
            Effect.fail(new ConflictError({ operation: "store.insert", message: `row ${row.id} clashes with row ${clash.id} (same id, name or service id)` }))
        }))
      ),
    transition: (change) =>
      Effect.gen(function*() {
        yield* faults.guard("transition")
        const now = yield* Clock.currentTimeMillis
        const applied = yield* Ref.modify(table, (rows) => {
          const copy = new Map(rows)
          const next = applyTransition(copy, change, now)
          return [next, next === undefined ? rows : copy] as const
        })
        if (applied === undefined) {
          return yield* new StaleStatusError({
            id: change.id,
            expected: [...change.from],
            message: `row ${change.id} is not in ${change.from.join("|")}`
          })
        }
        return applied
      }),
    transitionMany: (changes) =>
      Effect.gen(function*() {
        yield* faults.guard("transitionMany")
        const now = yield* Clock.currentTimeMillis
        return yield* Ref.modify(table, (rows) => {
          const copy = new Map(rows)
          const applied = changes.filter((change) => applyTransition(copy, change, now) !== undefined).map((c) => c.id)
          return [applied, copy] as const
        })
      }),
    claimIdle: (pool, count = 1, claimer = null, exclude = []) =>
      Effect.gen(function*() {
        yield* faults.guard("claimIdle")
        const now = yield* Clock.currentTimeMillis
        return yield* Ref.modify(table, (rows) => {
          const newest = [...rows.values()].filter((r) => r.pool === pool && r.status === "idle" && !exclude.includes(r.id)).sort(newestFirst).slice(0, count)
          const copy = new Map(rows)
          const claimed = newest.flatMap((r) => applyTransition(copy, { id: r.id, from: ["idle"], to: "claiming", patch: { intentBy: claimer } }, now) ?? [])
          return [claimed as ReadonlyArray<Instance>, copy] as const
        })
      }),
    remove: (id, from: ReadonlyArray<InstanceStatus>) =>
      faults.guard("remove").pipe(
        Effect.zipRight(
          Ref.modify(table, (rows) => {
            const row = rows.get(id)
            if (row === undefined || !from.includes(row.status)) return [false, rows] as const
            const copy = new Map(rows)
            copy.delete(id)
            return [true, copy] as const
          })
        )
      ),
    counts: (pool) =>
      faults.guard("counts").pipe(
        Effect.zipRight(Ref.get(table)),
        Effect.map((rows) => countByStatus([...rows.values()].filter((r) => r.pool === pool)))
      )
  }

  const control: Context.Tag.Service<InMemoryStoreControl> = {
    failNext: faults.failNext,
    setLatency: faults.setLatency,
    calls: faults.calls,
    rows: Ref.get(table).pipe(Effect.map((rows) => [...rows.values()].sort(oldestFirst)))
  }
  return { store, control }
})

/** An `InstanceStore` in memory: atomic like the real one, with fault injection through `InMemoryStoreControl`. */
export const InMemoryStore = {
  layer: Layer.effectContext(
    make.pipe(Effect.map(({ control, store }) => Context.make(InstanceStore, store).pipe(Context.add(InMemoryStoreControl, control))))
  ),
  /** A retryable database failure, for `failNext`. */
  unavailable: (operation = "store") => new StoreError({ operation, message: "database unavailable (injected)", retryable: true })
}

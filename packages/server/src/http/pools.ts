/** Several pools behind one API: which pool a request names, and counts summed over pools. */
import { Controller, countByStatus, currentTemplate, type Instance, type InstanceStore, Pools, type StatusCounts, type StuckAction } from "@warmpool/reconciler"
import { Effect, Option } from "effect"
import { BadRequest, NotFound } from "../api/api.js"
import { toSizing } from "./sizing.js"

/** The pools in context; an app that provides one `Controller` only (a single pool) serves that one. */
export const poolsInContext = Effect.flatMap(
  Effect.serviceOption(Pools),
  Option.match({ onSome: Effect.succeed, onNone: () => Effect.map(Controller, (one) => Pools.over([one])) })
)

/**
 * The pool a request names (`?pool=`, a body's `pool` or `runtime`: they must agree); the default pool when
 * none. An unknown name is a 400 that lists the known ones.
 */
export const pickPool = (pools: Pools["Type"], ...names: ReadonlyArray<string | undefined>) => {
  const named = [...new Set(names.filter((n): n is string => n !== undefined))]
  if (named.length > 1) return Effect.fail(new BadRequest({ message: `the request names different pools: ${named.join(", ")}` }))
  return pools.pick(named[0]).pipe(Effect.mapError((error) => new BadRequest({ message: error.message })))
}

/** `?pool=`: that pool only, or every pool. */
export const selectPools = (pools: Pools["Type"], name: string | undefined): Effect.Effect<ReadonlyArray<Controller["Type"]>, BadRequest> =>
  name === undefined ? Effect.succeed(pools.all) : Effect.map(pickPool(pools, name), (one) => [one])

/** Counts of every status over several pools: the seed's top-level numbers. */
export const sumCounts = (all: ReadonlyArray<StatusCounts>): StatusCounts => {
  const sum: Record<keyof StatusCounts, number> = { ...countByStatus([]) }
  for (const counts of all) for (const key of Object.keys(sum) as Array<keyof StatusCounts>) sum[key] += counts[key]
  return sum
}

/** The seed's counts (summed) and each selected pool's. */
export const poolCounts = (store: InstanceStore["Type"], selected: ReadonlyArray<Controller["Type"]>) =>
  Effect.map(Effect.forEach(selected, (c) => store.counts(c.spec.name)), (each) => ({
    ...sumCounts(each),
    pools: Object.fromEntries(selected.map((c, i) => [c.spec.name, each[i]!]))
  }))

const toStuck = (stuck: StuckAction) => ({ ...stuck, since: stuck.since.toISOString(), retryAt: stuck.retryAt.toISOString() })

/** The status: counts summed, each selected pool (size, template, counts), and the instances as `show` shows them. */
export const poolStatus = <A>(
  store: InstanceStore["Type"],
  pools: Pools["Type"],
  selected: ReadonlyArray<Controller["Type"]>,
  show: (row: Instance) => A
) =>
  Effect.map(Effect.forEach(selected, (c) => Effect.all([store.counts(c.spec.name), store.list(c.spec.name), c.sizing, c.stuck])), (each) => ({
    counts: sumCounts(each.map(([counts]) => counts)),
    pools: Object.fromEntries(selected.map(({ spec }, i) => [spec.name, {
      default: spec.name === pools.all[0]?.spec.name,
      minIdle: spec.minIdle,
      maxTotal: spec.maxTotal,
      maxSurge: spec.maxSurge,
      image: spec.template.image,
      templateHash: currentTemplate(spec).hash,
      counts: each[i]![0],
      ...Option.match(each[i]![2], { onNone: () => ({}), onSome: (decision) => ({ sizing: toSizing(decision) }) }),
      ...(each[i]![3].length === 0 ? {} : { stuck: each[i]![3].map(toStuck) })
    }])),
    instances: each.flatMap(([, rows]) => rows.map(show))
  }))

/** The controller of the pool an instance belongs to (the default one for a row of an undeclared pool). */
export const controllerOf = (pools: Pools["Type"], store: InstanceStore["Type"], id: string) =>
  Effect.gen(function*() {
    const row = yield* store.get(id)
    if (Option.isNone(row)) return yield* new NotFound({ message: `no instance ${id}` })
    return yield* pools.pick(row.value.pool).pipe(Effect.orElseSucceed(() => pools.all[0]!))
  })

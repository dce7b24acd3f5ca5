/**
 * Several pools in one manager: a Controller per declared pool, each with its own lease (one leader per
 * pool, so replicas can share the work), looked up by name.
 */
import { Context, Effect, Layer, type Scope } from "effect"
import type { PoolSpec } from "../domain/pool-spec.js"
import { UnknownPoolError } from "../errors.js"
import { Leadership } from "../services.js"
import { Controller, type ControllerOptions, type ControllerRequirements } from "./controller.js"

/** Problems with a set of pools, one line each: names must differ, and no pool may list another's services. */
export const poolSetProblems = (specs: ReadonlyArray<PoolSpec>): ReadonlyArray<string> => {
  const problems: Array<string> = []
  if (specs.length === 0) problems.push("at least one pool must be declared")
  specs.forEach((a, i) => {
    for (const b of specs.slice(i + 1)) {
      if (a.name === b.name) problems.push(`pool name "${a.name}" is declared twice`)
      // A pool lists the platform's services by prefix: one prefix inside another would adopt the other's.
      else if (a.namePrefix.startsWith(b.namePrefix) || b.namePrefix.startsWith(a.namePrefix)) {
        problems.push(`pools "${a.name}" and "${b.name}": namePrefix "${a.namePrefix}" and "${b.namePrefix}" overlap; give each pool a prefix that does not start with another's`)
      }
    }
  })
  return problems
}

/** How a pool gets its leadership: e.g. a Postgres lease named after it. */
export type LeadershipOf<R> = (spec: PoolSpec) => Effect.Effect<Leadership["Type"], never, R | Scope.Scope>

/** Every pool shares the `Leadership` in context (one leader for all). */
const shared: LeadershipOf<Leadership> = () => Leadership

type PoolsRequirements<R> = Exclude<ControllerRequirements, Leadership> | R

/** The Controllers of every declared pool. The first pool is the default one. */
export class Pools extends Context.Tag("@warmpool/reconciler/Pools")<
  Pools,
  {
    /** Every pool's controller, in declaration order. */
    readonly all: ReadonlyArray<Controller["Type"]>
    /** The pool named `name`; the default pool when `name` is undefined. */
    readonly pick: (name?: string) => Effect.Effect<Controller["Type"], UnknownPoolError>
  }
>() {
  static readonly make = <R>(specs: ReadonlyArray<PoolSpec>, leadership: LeadershipOf<R>, options?: ControllerOptions) =>
    Effect.gen(function*() {
      const problems = poolSetProblems(specs)
      if (problems.length > 0) return yield* Effect.dieMessage(problems.join("; "))
      const all = yield* Effect.forEach(specs, (spec) =>
        Effect.flatMap(leadership(spec), (leader) => Effect.provideService(Controller.make(spec, options), Leadership, leader)))
      return Pools.over(all)
    })

  /** The registry over controllers made elsewhere (e.g. the one `Controller` of a single-pool app). */
  static readonly over = (all: ReadonlyArray<Controller["Type"]>): Pools["Type"] => {
    const byName = new Map(all.map((controller) => [controller.spec.name, controller]))
    const known = all.map((c) => c.spec.name)
    return {
      all,
      pick: (name) => {
        const found = name === undefined ? all[0] : byName.get(name)
        return found !== undefined
          ? Effect.succeed(found)
          : Effect.fail(new UnknownPoolError({ pool: String(name), known, message: `unknown pool "${name}"; known pools: ${known.join(", ")}` }))
      }
    }
  }

  /** Every pool's controller, passes running for the layer's lifetime; `Controller` is the default pool's. */
  static readonly layerWith = <R>(
    specs: ReadonlyArray<PoolSpec>,
    leadership: LeadershipOf<R>,
    options?: ControllerOptions
  ): Layer.Layer<Pools | Controller, never, Exclude<PoolsRequirements<R>, Scope.Scope>> =>
    Layer.scopedContext(
      Effect.map(Pools.make(specs, leadership, options), (pools) => Context.make(Pools, pools).pipe(Context.add(Controller, pools.all[0]!)))
    )

  /** As `layerWith`, every pool under the one `Leadership` in context. */
  static readonly layer = (specs: ReadonlyArray<PoolSpec>, options?: ControllerOptions) => Pools.layerWith(specs, shared, options)
}

/** A pool mid-rollout on a healthy platform: every service runs, every probe says ready. For tests and benches. */
import { type Action, Instance, type InstanceStatus, Listing, newInstance, plan, type PoolSpec, ServiceInfo, templateHash } from "../../src/index.js"
import { NOW } from "./worlds.js"

export const OLD_HASH = "0ld0ld0ld0ld0ld0"

export interface RolloutPool {
  readonly spec: PoolSpec
  readonly rows: ReadonlyArray<Instance>
  readonly now: number
  readonly next: number
}

const row = (pool: RolloutPool, status: InstanceStatus, hash: string, createdAt: number): Instance => {
  const id = `r${pool.next}`
  return new Instance({
    ...newInstance({ id, pool: pool.spec.name, name: `${pool.spec.namePrefix}${id}`, status, now: new Date(createdAt) }),
    serviceId: `svc-${id}`,
    url: `https://${id}.test`,
    deployStatus: "SUCCESS",
    templateHash: hash
  })
}

/** A pool whose instances were all made from an old template. */
export const rolloutPool = (spec: PoolSpec, counts: { readonly idle: number; readonly starting?: number; readonly claimed?: number }): RolloutPool => {
  let pool: RolloutPool = { spec, rows: [], now: NOW, next: 0 }
  const add = (status: InstanceStatus, n: number) => {
    for (let i = 0; i < n; i++) pool = { ...pool, rows: [...pool.rows, row(pool, status, OLD_HASH, NOW - 3_600_000)], next: pool.next + 1 }
  }
  add("idle", counts.idle)
  add("starting", counts.starting ?? 0)
  add("claimed", counts.claimed ?? 0)
  return pool
}

/** One pass: plan against what the platform shows, then its actions applied (a create is a starting row). */
export const rolloutPass = (pool: RolloutPool): { readonly pool: RolloutPool; readonly actions: ReadonlyArray<Action> } => {
  const { spec } = pool
  const actions = plan(spec, {
    listing: Listing.Complete({
      services: pool.rows.map((r) => new ServiceInfo({ serviceId: r.serviceId!, name: r.name, url: r.url, deployStatus: "SUCCESS", image: null, createdAt: r.createdAt }))
    }),
    rows: pool.rows,
    health: new Map(pool.rows.map((r) => [r.id, "ready" as const])),
    incarnation: "self",
    alive: new Set(["self"]),
    now: pool.now,
    createAllowance: spec.createBatch,
    requestedCreates: 0
  })
  let next = pool
  const hash = templateHash(spec.template)
  for (const action of actions) {
    if (action._tag === "MarkIdle") next = { ...next, rows: next.rows.map((r) => (r.id === action.id ? new Instance({ ...r, status: "idle" }) : r)) }
    else if (action._tag === "Delete") next = { ...next, rows: next.rows.filter((r) => r.id !== action.id) }
    else if (action._tag === "Create") next = { ...next, rows: [...next.rows, row(next, "starting", hash, next.now)], next: next.next + 1 }
  }
  return { pool: { ...next, now: next.now + 30_000 }, actions }
}

/** Every unclaimed instance carries the pool's template. */
export const rolledOut = (pool: RolloutPool): boolean => {
  const hash = templateHash(pool.spec.template)
  return pool.rows.every((r) => r.status === "claimed" || r.templateHash === hash)
}

/** Generated worlds for the plan's property tests: specs, rows, platform services, health, clocks. */
import * as fc from "effect/FastCheck"
import {
  type Health,
  Instance,
  type InstanceStatus,
  instanceStatuses,
  Listing,
  newInstance,
  type Observation,
  PoolSpec,
  ServiceInfo
} from "../../src/index.js"

export const NOW = Date.UTC(2026, 10, 24, 12, 0, 0)
/** The incarnation planning; another that is alive (a standby replica); one whose process died. */
export const SELF = "self"
export const STANDBY = "standby"
export const DEAD = "dead"
const MINUTE = 60_000

export const arbSpec: fc.Arbitrary<PoolSpec> = fc
  .record({
    minIdle: fc.integer({ min: 0, max: 8 }),
    extra: fc.integer({ min: 0, max: 12 }),
    createBatch: fc.integer({ min: 1, max: 6 }),
    deleteBatch: fc.integer({ min: 1, max: 6 }),
    stuckTimeoutMs: fc.integer({ min: 1, max: 30 }).map((m) => m * MINUTE),
    claimTimeoutMs: fc.integer({ min: 1, max: 5 }).map((m) => m * MINUTE),
    createTimeoutMs: fc.integer({ min: 1, max: 10 }).map((m) => m * MINUTE),
    listingGraceMs: fc.integer({ min: 1, max: 3 }).map((m) => m * MINUTE)
  })
  .map(({ extra, minIdle, ...timing }) =>
    new PoolSpec({
      name: "pool",
      namePrefix: "agent-",
      minIdle,
      maxTotal: Math.max(1, minIdle + extra),
      template: { image: "runtime:latest", env: {} },
      ...timing
    })
  )

const deployStatuses = [
  "SUCCESS",
  "SUCCESS",
  "SLEEPING",
  "BUILDING",
  "DEPLOYING",
  "QUEUED",
  "FAILED",
  "CRASHED",
  "REMOVED",
  "SKIPPED",
  "SOMETHING_NEW",
  null
] as const

/** How a row's service shows up on the platform. */
type Presence = "listed" | "missing" | "listed-by-name"

const arbRowSeed = fc.record({
  status: fc.constantFrom<InstanceStatus>(...instanceStatuses),
  ageMin: fc.integer({ min: 0, max: 120 }),
  sinceChangeFraction: fc.double({ min: 0, max: 1, noNaN: true }),
  hasServiceId: fc.boolean(),
  presence: fc.constantFrom<Presence>("listed", "listed", "listed", "missing", "listed-by-name"),
  rowDeploy: fc.constantFrom(...deployStatuses),
  serviceDeploy: fc.constantFrom(...deployStatuses),
  health: fc.constantFrom<Health | "unprobed">("ready", "not-ready", "unreachable", "unprobed"),
  otherPool: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  // null: written before intents were stamped.
  intentBy: fc.constantFrom<string | null>(SELF, SELF, STANDBY, DEAD, null),
  // A late write: a create of a dead run that landed after the row was finished — a second service of its name,
  // listed now (`listed`), or landing `pass` passes from now (for the convergence model).
  late: fc.oneof(
    { weight: 4, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.record({ listed: fc.boolean(), pass: fc.integer({ min: 0, max: 3 }), ageMin: fc.integer({ min: 0, max: 5 }) }) }
  )
})

const arbStraySeed = fc.record({
  ageMin: fc.integer({ min: 0, max: 120 }),
  prefixed: fc.boolean(),
  deploy: fc.constantFrom(...deployStatuses)
})

export interface World {
  readonly spec: PoolSpec
  readonly observation: Observation
  /** Creates of dead runs still on their way: each lands as a service of `name` at pass `pass` of a model. */
  readonly lateWrites?: ReadonlyArray<{ readonly name: string; readonly pass: number }>
}

export const arbWorld: fc.Arbitrary<World> = fc
  .record({
    spec: arbSpec,
    rows: fc.array(arbRowSeed, { maxLength: 30 }),
    strays: fc.array(arbStraySeed, { maxLength: 5 }),
    failed: fc.integer({ min: 0, max: 3 }).map((n) => n === 0),
    createAllowance: fc.integer({ min: 0, max: 6 }),
    requestedCreates: fc.constantFrom(0, 0, 0, 1, 3),
    waitingClaims: fc.constantFrom(0, 0, 0, 1, 4)
  })
  .map(({ createAllowance, failed, requestedCreates, rows: seeds, spec, strays, waitingClaims }) => {
    const rows: Array<Instance> = []
    const services: Array<ServiceInfo> = []
    const health = new Map<string, Health>()
    const lateWrites: Array<{ name: string; pass: number }> = []
    seeds.forEach((seed, i) => {
      const id = `r${i}`
      const name = `${spec.namePrefix}${id}`
      const createdAt = NOW - seed.ageMin * MINUTE
      const statusChangedAt = createdAt + Math.floor((NOW - createdAt) * seed.sinceChangeFraction)
      const serviceId = seed.hasServiceId || seed.status !== "creating" ? `svc-${i}` : null
      rows.push(
        new Instance({
          ...newInstance({ id, pool: seed.otherPool ? "other" : spec.name, name, status: seed.status, now: new Date(createdAt) }),
          serviceId,
          url: `https://${name}.example`,
          deployStatus: seed.rowDeploy,
          statusChangedAt: new Date(statusChangedAt),
          claimedAt: seed.status === "claimed" ? new Date(statusChangedAt) : null,
          intentBy: seed.intentBy
        })
      )
      if (seed.presence !== "missing") {
        services.push(
          new ServiceInfo({
            serviceId: seed.presence === "listed" && serviceId !== null ? serviceId : `svc-${i}`,
            name,
            url: `https://${name}.example`,
            deployStatus: seed.serviceDeploy,
            image: "runtime:latest",
            createdAt: new Date(createdAt)
          })
        )
      }
      if (seed.late !== undefined && seed.late.listed) {
        services.push(
          new ServiceInfo({
            serviceId: `late-${i}`,
            name,
            url: null,
            deployStatus: seed.serviceDeploy,
            image: "runtime:latest",
            createdAt: new Date(NOW - seed.late.ageMin * MINUTE)
          })
        )
      } else if (seed.late !== undefined && seed.status === "creating" && !seed.otherPool && seed.intentBy !== SELF) {
        // Only a create of another run can still be on its way when this one plans.
        lateWrites.push({ name, pass: seed.late.pass })
      }
      if (seed.health !== "unprobed") health.set(id, seed.health)
    })
    strays.forEach((stray, i) => {
      services.push(
        new ServiceInfo({
          serviceId: `stray-${i}`,
          name: stray.prefixed ? `${spec.namePrefix}stray${i}` : `unrelated-${i}`,
          url: null,
          deployStatus: stray.deploy,
          image: null,
          createdAt: new Date(NOW - stray.ageMin * MINUTE)
        })
      )
    })
    const observation: Observation = {
      listing: failed ? Listing.Failed({ reason: "listing failed" }) : Listing.Complete({ services }),
      rows,
      health,
      now: NOW,
      createAllowance,
      requestedCreates,
      waitingClaims,
      incarnation: SELF,
      alive: new Set([SELF, STANDBY])
    }
    return { spec, observation, lateWrites }
  })

/** A pool of `size` rows: the shape of a large steady pool (benchmarks). */
export const steadyWorld = (size: number): World => {
  const spec = new PoolSpec({
    name: "pool",
    namePrefix: "agent-",
    minIdle: Math.floor(size / 2),
    maxTotal: size * 2,
    template: { image: "runtime:latest", env: {} }
  })
  const statuses: ReadonlyArray<InstanceStatus> = ["idle", "idle", "claimed", "starting", "crashed"]
  const rows: Array<Instance> = []
  const services: Array<ServiceInfo> = []
  const health = new Map<string, Health>()
  for (let i = 0; i < size; i++) {
    const id = `r${i}`
    const name = `agent-${id}`
    const createdAt = new Date(NOW - (i % 600) * 1000 - 120_000)
    rows.push(
      new Instance({
        ...newInstance({ id, pool: "pool", name, status: statuses[i % statuses.length]!, now: createdAt }),
        serviceId: `svc-${i}`,
        url: `https://${name}.example`,
        deployStatus: "SUCCESS"
      })
    )
    services.push(
      new ServiceInfo({
        serviceId: `svc-${i}`,
        name,
        url: `https://${name}.example`,
        deployStatus: i % 97 === 0 ? "CRASHED" : "SUCCESS",
        image: "runtime:latest",
        createdAt
      })
    )
    if (i % 5 === 3) health.set(id, "ready")
  }
  return {
    spec,
    observation: {
      listing: Listing.Complete({ services }),
      rows,
      health,
      now: NOW,
      createAllowance: spec.createBatch,
      requestedCreates: 0,
      incarnation: SELF,
      alive: new Set([SELF])
    }
  }
}

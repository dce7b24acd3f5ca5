/**
 * DESIGN §2, rule by rule, as properties of `plan` over generated worlds.
 * Each property names its rule; a failure prints the shrunk world.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fc from "effect/FastCheck"
import {
  type Action,
  boundStatuses,
  deployPhase,
  dismissableStatuses,
  Instance,
  Listing,
  newInstance,
  nextCreateAllowance,
  type Observation,
  plan,
  PoolSpec,
  probeTargets,
  ServiceInfo
} from "../src/index.js"
import { arbSpec, arbWorld, NOW, SELF, STANDBY, type World } from "./support/worlds.js"

const runs = { fastCheck: { numRuns: 400 } }

const ofTag = <T extends Action["_tag"]>(actions: ReadonlyArray<Action>, tag: T) =>
  actions.filter((a): a is Extract<Action, { _tag: T }> => a._tag === tag)

const rowOf = (world: World, id: string) => world.observation.rows.find((r) => r.id === id)!
const mine = (world: World) => world.observation.rows.filter((r) => r.pool === world.spec.name)
const services = (world: World) =>
  world.observation.listing._tag === "Complete" ? world.observation.listing.services : []
const isComplete = (world: World) => world.observation.listing._tag === "Complete"
const targetsRow = (a: Action): a is Extract<Action, { id: string }> => "id" in a

describe("plan", () => {
  it.prop("is total and deterministic, and touches only its own pool's rows, once each", { world: arbWorld }, ({ world }) => {
    const first = plan(world.spec, world.observation)
    expect(plan(world.spec, world.observation)).toEqual(first)
    const ids = first.filter(targetsRow).map((a) => a.id)
    expect(new Set(ids).size).toBe(ids.length)
    for (const id of ids) expect(rowOf(world, id).pool).toBe(world.spec.name)
  }, runs)

  it.prop("rule 1: a claimed instance is never deleted, drained or marked idle; it can only become crashed", { world: arbWorld }, ({ world }) => {
    const actions = plan(world.spec, world.observation)
    for (const action of actions.filter(targetsRow)) {
      const row = rowOf(world, action.id)
      if (!boundStatuses.includes(row.status)) continue
      expect(["MarkCrashed", "Refresh"]).toContain(action._tag)
      if (action._tag === "Refresh") expect(action.status).toBe(row.status)
    }
    // Crashed and tainted rows stay until dismissed: no action but by way of `deleting`.
    for (const action of actions.filter(targetsRow)) expect(dismissableStatuses).not.toContain(rowOf(world, action.id).status)
  }, runs)

  it.prop("rule 2: no destructive action on an incomplete observation", { world: arbWorld }, ({ world }) => {
    const failed = { ...world.observation, listing: Listing.Failed({ reason: "page 2 failed" }) }
    const actions = plan(world.spec, failed)
    for (const tag of ["Delete", "Create", "Adopt", "RecordService", "FinishCreate", "Refresh"] as const) {
      expect(ofTag(actions, tag)).toEqual([])
    }
    // It may still mark rows idle, and time out claims: neither rests on "missing" evidence.
    for (const action of actions) expect(["MarkIdle", "MarkCrashed"]).toContain(action._tag)
    for (const action of ofTag(actions, "MarkCrashed")) expect(["claim-timeout", "claim-abandoned"]).toContain(action.reason)
  }, runs)

  it.prop("rule 2: a recent (reused) listing refills from the rows, and nothing destructive follows from it", { world: arbWorld }, ({ world }) => {
    const listed = services(world)
    const recent = { ...world.observation, listing: Listing.Recent({ services: listed, ageMs: 5_000 }) }
    const actions = plan(world.spec, recent)
    for (const action of actions) expect(["Create", "MarkIdle", "MarkCrashed"]).toContain(action._tag)
    for (const action of ofTag(actions, "MarkCrashed")) expect(["claim-timeout", "claim-abandoned"]).toContain(action.reason)
    // Never past maxTotal: every row and every service no row owns counts.
    const rows = mine(world)
    const unowned = listed.filter((s) => s.name.startsWith(world.spec.namePrefix) && !rows.some((r) => r.serviceId === s.serviceId || r.name === s.name))
    expect(rows.length + unowned.length + ofTag(actions, "Create").length).toBeLessThanOrEqual(Math.max(world.spec.maxTotal, rows.length + unowned.length))
    // Creates in flight, starting and idle rows count toward the pool: no more creates than it lacks (waiting
    // claims raise what it needs), plus requests.
    const warm = rows.filter((r) => ["creating", "starting", "idle"].includes(r.status)).length
    const needed = world.spec.minIdle + (world.observation.waitingClaims ?? 0)
    expect(ofTag(actions, "Create").length).toBeLessThanOrEqual(Math.max(0, needed - warm) + world.observation.requestedCreates)
  }, runs)

  it.prop("rule 3: a create in flight is left alone; an abandoned one is recorded (deployed) or finished, never made twice", { world: arbWorld }, ({ world }) => {
    const actions = plan(world.spec, world.observation)
    for (const row of mine(world).filter((r) => r.status === "creating")) {
      const onRow = actions.filter(targetsRow).filter((a) => a.id === row.id)
      const inFlight = row.intentBy === SELF && NOW - row.statusChangedAt.getTime() <= world.spec.createTimeoutMs
      if (inFlight || !isComplete(world)) {
        expect(onRow).toEqual([])
        continue
      }
      const service = services(world).find((s) =>
        row.serviceId !== null ? s.serviceId === row.serviceId : s.name === row.name
      )
      expect(onRow.map((a) => a._tag)).toEqual([service?.deployStatus != null ? "RecordService" : "FinishCreate"])
    }
    // A `deleting` row is always carried on to the end (within the delete batch).
    const deleting = mine(world).filter((r) => r.status === "deleting")
    if (isComplete(world)) {
      const finished = ofTag(actions, "Delete").filter((d) => d.from === "deleting")
      expect(finished.length).toBe(Math.min(deleting.length, world.spec.deleteBatch - ofTag(actions, "RemoveService").length))
    }
  }, runs)

  it.prop("rule 4: creates in flight count; a pass before the platform shows them creates nothing more", { world: arbWorld }, ({ world }) => {
    const observation = { ...world.observation, requestedCreates: 0 }
    const first = plan(world.spec, observation)
    const creates = ofTag(first, "Create").length
    // The creates are in flight (rows `creating`), the listing has not caught up.
    const inFlight = Array.from({ length: creates }, (_, i) =>
      newInstance({ id: `new${i}`, pool: world.spec.name, name: `${world.spec.namePrefix}new${i}`, status: "creating", now: new Date(NOW) })
    )
    const second = plan(world.spec, { ...observation, rows: [...observation.rows, ...inFlight] })
    const warmAfter = countWarm(world, first) + creates
    // Whatever the second pass creates only tops up what the first could not (batch, allowance); waiting claims
    // raise the target by one each.
    const target = world.spec.minIdle + (world.observation.waitingClaims ?? 0)
    expect(warmAfter + ofTag(second, "Create").length).toBeLessThanOrEqual(Math.max(target, warmAfter))
  }, runs)

  it.prop("rule 5: creates and deletes are bounded per pass, and total never passes maxTotal", { world: arbWorld }, ({ world }) => {
    const actions = plan(world.spec, world.observation)
    const creates = ofTag(actions, "Create").length
    expect(creates).toBeLessThanOrEqual(world.spec.createBatch)
    expect(creates).toBeLessThanOrEqual(world.observation.createAllowance)
    expect(ofTag(actions, "Delete").length + ofTag(actions, "RemoveService").length).toBeLessThanOrEqual(world.spec.deleteBatch)
    if (creates > 0) {
      const ownedServices = services(world).filter((s) => s.name.startsWith(world.spec.namePrefix))
      const rowNames = new Set(mine(world).map((r) => r.name))
      const rowServiceIds = new Set(mine(world).map((r) => r.serviceId))
      const unowned = ownedServices.filter((s) => !rowNames.has(s.name) && !rowServiceIds.has(s.serviceId))
      expect(mine(world).length + unowned.length + creates).toBeLessThanOrEqual(world.spec.maxTotal)
    }
  }, runs)

  it.prop("rule 5: slow start after create failures — 1, 2, 4, … up to createBatch", { spec: arbSpec, previous: fc.integer({ min: 0, max: 10 }) }, ({ previous, spec }) => {
    expect(nextCreateAllowance(spec, previous, { attempted: 3, failed: 1 })).toBe(1)
    let allowance = 1
    const seen = [allowance]
    while (allowance < spec.createBatch) {
      allowance = nextCreateAllowance(spec, allowance, { attempted: allowance, failed: 0 })
      seen.push(allowance)
    }
    expect(seen).toEqual(seen.map((_, i) => Math.min(2 ** i, spec.createBatch)))
    expect(nextCreateAllowance(spec, allowance, { attempted: 0, failed: 0 })).toBe(spec.createBatch)
  })

  it.prop("rule 6: prefixed services without a row are adopted after the grace; rows whose service is gone are orphans", { world: arbWorld }, ({ world }) => {
    const actions = plan(world.spec, world.observation)
    const adopted = new Set(ofTag(actions, "Adopt").map((a) => a.service.serviceId))
    if (!isComplete(world)) {
      expect(adopted.size).toBe(0)
      return
    }
    const rows = mine(world)
    const unowned = services(world).filter((s) =>
      s.name.startsWith(world.spec.namePrefix) && !rows.some((r) => r.serviceId === s.serviceId || r.name === s.name)
    )
    for (const service of services(world)) {
      // Of several services of one name, only the oldest is adopted: the others are its duplicates.
      const oldestOfName = unowned.filter((s) => s.name === service.name).sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.serviceId.localeCompare(b.serviceId))[0]
      const expected = oldestOfName === service && NOW - service.createdAt.getTime() > world.spec.listingGraceMs
      expect(adopted.has(service.serviceId)).toBe(expected)
    }
    const deletes = ofTag(actions, "Delete")
    // Services without a row are removed first, within the same batch.
    const batchFull = deletes.length + ofTag(actions, "RemoveService").length === world.spec.deleteBatch
    for (const row of rows) {
      const gone = !services(world).some((s) => (row.serviceId !== null ? s.serviceId === row.serviceId : s.name === row.name))
      const old = NOW - row.createdAt.getTime() > world.spec.listingGraceMs
      if (!gone || !old) continue
      if (row.status === "claimed") {
        expect(ofTag(actions, "MarkCrashed").find((a) => a.id === row.id)?.reason).toBe("vanished")
      }
      if (row.status === "starting" || row.status === "idle") {
        const deleted = deletes.find((d) => d.id === row.id)
        expect(deleted?.reason === "orphan" || (deleted === undefined && batchFull)).toBe(true)
      }
    }
  }, runs)

  it.prop("rule 6, late writes: a service with a row's name is never adopted; once the row has its own, any other is removed", { world: arbWorld }, ({ world }) => {
    const actions = plan(world.spec, world.observation)
    const removed = ofTag(actions, "RemoveService")
    if (!isComplete(world)) {
      expect(removed).toEqual([])
      return
    }
    const rows = mine(world)
    const rowServiceIds = new Set(rows.map((r) => r.serviceId))
    const byName = new Map(rows.map((r) => [r.name, r]))
    // Never a service some row points at, never one whose row is still creating (its create decides).
    for (const { service } of removed) {
      expect(rowServiceIds.has(service.serviceId)).toBe(false)
      expect(byName.get(service.name)?.status).not.toBe("creating")
    }
    const adopted = ofTag(actions, "Adopt")
    for (const { service } of adopted) expect(byName.has(service.name)).toBe(false)
    // Every duplicate of a row's service is removed (removals go first in the delete batch).
    const duplicates = services(world).filter((s) => {
      const row = byName.get(s.name)
      return row !== undefined && row.status !== "creating" && !rowServiceIds.has(s.serviceId) && s.serviceId !== (row.serviceId ?? s.serviceId)
    })
    const removedIds = new Set(removed.map((r) => r.service.serviceId))
    if (removed.length < world.spec.deleteBatch) for (const d of duplicates) expect(removedIds.has(d.serviceId)).toBe(true)
    // What is kept (not removed) has at most one service per name, besides those a creating row still decides on.
    const kept = services(world).filter((s) => s.name.startsWith(world.spec.namePrefix) && !removedIds.has(s.serviceId) && byName.get(s.name)?.status !== "creating")
    const ownedOrAdopted = kept.filter((s) => rowServiceIds.has(s.serviceId) || adopted.some((a) => a.service.serviceId === s.serviceId))
    if (removed.length < world.spec.deleteBatch) expect(new Set(ownedOrAdopted.map((s) => s.name)).size).toBe(ownedOrAdopted.length)
  }, runs)

  it.prop("rule 7: stuck unclaimed instances are deleted; a timed-out claim becomes crashed, never idle", { world: arbWorld }, ({ world }) => {
    const actions = plan(world.spec, world.observation)
    const deletes = ofTag(actions, "Delete")
    // Services without a row are removed first, within the same batch.
    const batchFull = deletes.length + ofTag(actions, "RemoveService").length === world.spec.deleteBatch
    for (const row of mine(world)) {
      if (row.status === "claiming" && NOW - row.statusChangedAt.getTime() > world.spec.claimTimeoutMs) {
        expect(ofTag(actions, "MarkCrashed").find((a) => a.id === row.id)?.reason).toMatch(/^claim-(timeout|abandoned)$/)
      }
      const service = services(world).find((s) => (row.serviceId !== null ? s.serviceId === row.serviceId : s.name === row.name))
      const stuck =
        row.status === "starting" &&
        service !== undefined &&
        !ofTag(actions, "MarkIdle").some((a) => a.id === row.id) &&
        ["starting", "running"].includes(deployPhase(service.deployStatus)) &&
        NOW - row.createdAt.getTime() > world.spec.stuckTimeoutMs
      if (stuck) {
        const deleted = deletes.find((d) => d.id === row.id)
        expect(deleted?.reason === "stuck" || (deleted === undefined && batchFull)).toBe(true)
      }
      // SLEEPING is not death: never deleted as dead or stuck.
      if (service?.deployStatus === "SLEEPING") {
        expect(deletes.some((d) => d.id === row.id && (d.reason === "dead" || d.reason === "stuck"))).toBe(false)
      }
    }
  }, runs)

  it.prop("rule 9: intents of another incarnation are resolved in the first complete pass; timeouts only for our own", { world: arbWorld }, ({ world }) => {
    const abandonedClaim = (r: Instance, alive: ReadonlySet<string>) => r.status === "claiming" && r.intentBy !== null && !alive.has(r.intentBy)
    const resolved = (actions: ReadonlyArray<Action>, row: Instance) => {
      const onRow = actions.filter(targetsRow).filter((a) => a.id === row.id).map((a) => a._tag)
      return row.status === "creating" ? onRow.length === 1 && ["RecordService", "FinishCreate"].includes(onRow[0]!) : onRow.includes("MarkCrashed")
    }
    const actions = plan(world.spec, world.observation)
    for (const row of mine(world)) {
      const young = NOW - row.statusChangedAt.getTime() <= Math.min(world.spec.createTimeoutMs, world.spec.claimTimeoutMs)
      // A claim of a dead process is crashed at once, however young, and whatever the listing (it rests on no listing).
      if (abandonedClaim(row, world.observation.alive)) {
        expect(ofTag(actions, "MarkCrashed").find((a) => a.id === row.id)?.reason).toBe("claim-abandoned")
      }
      // A young intent of this run, or a young claim of a live replica (or an unstamped one), is in flight: untouched.
      const inFlight = (row.status === "creating" && row.intentBy === SELF) ||
        (row.status === "claiming" && (row.intentBy === null || row.intentBy === SELF || row.intentBy === STANDBY))
      if (inFlight && young) expect(actions.filter(targetsRow).some((a) => a.id === row.id)).toBe(false)
      // A create of anyone else, or of no one known, is resolved at once when the listing is complete.
      if (row.status === "creating" && row.intentBy !== SELF && isComplete(world)) expect(resolved(actions, row)).toBe(true)
    }
    // A restart: a new incarnation, every earlier one gone. Its first complete pass resolves every stamped intent.
    const restart = { ...world.observation, incarnation: "next", alive: new Set(["next"]) }
    const first = plan(world.spec, restart)
    for (const row of mine(world)) {
      if (row.status === "creating" && isComplete(world)) expect(resolved(first, row)).toBe(true)
      if (row.status === "claiming" && row.intentBy !== null) expect(resolved(first, row)).toBe(true)
    }
  }, runs)

  it.prop("rule 8: with a healthy platform the pool converges to minIdle and stays within maxTotal", { world: arbWorld }, ({ world }) => {
    let state = healthyPlatform(world)
    for (let pass = 0; pass < 40; pass++) {
      state = step(world, state)
      expect(state.rows.length).toBeLessThanOrEqual(Math.max(world.spec.maxTotal, state.initialTotal))
    }
    const warm = state.rows.filter((r) => r.status === "idle" || r.status === "starting" || r.status === "creating")
    const bound = state.rows.length - warm.length
    // minIdle is reached, unless maxTotal leaves no room beside the claimed and crashed rows.
    expect(warm.length).toBeGreaterThanOrEqual(Math.min(world.spec.minIdle, world.spec.maxTotal - bound))
    expect(state.rows.length).toBeLessThanOrEqual(Math.max(world.spec.maxTotal, state.initialTotal))
    // Late writes included: no name twice on the platform, and every service has the row that points at it.
    expect(new Set(state.services.map((s) => s.name)).size).toBe(state.services.length)
    for (const service of state.services) expect(state.rows.some((r) => r.serviceId === service.serviceId)).toBe(true)
    // Steady state: another pass changes nothing.
    expect(plan(world.spec, observe(state)).filter((a) => a._tag !== "Refresh")).toEqual([])
  }, { fastCheck: { numRuns: 150 } })
})

describe("plan: protected instances (PROTECTED_INSTANCES)", () => {
  /** The world with some of its own rows protected, and a template change half of the time (a rollout). */
  const arbProtected = arbWorld.chain((world) =>
    fc.record({
      picked: fc.subarray(mine(world).map((r) => r.id)),
      newImage: fc.boolean()
    }).map(({ newImage, picked }) => ({
      world,
      spec: newImage ? new PoolSpec({ ...world.spec, template: { ...world.spec.template, image: `${world.spec.template.image}-next` } }) : world.spec,
      protectedIds: new Set(picked)
    })))

  it.prop("rule 13: a protected instance is never deleted: not as an orphan, dead, stuck, requested, rolled out or surplus", { input: arbProtected }, ({ input }) => {
    const { protectedIds, spec, world } = input
    const actions = plan(spec, { ...world.observation, protectedIds })
    for (const action of ofTag(actions, "Delete")) expect(protectedIds.has(action.id)).toBe(false)
    // The rest of the plan goes on: every delete the unprotected world plans for an unprotected row that still
    // fits the batch is planned.
    const unguarded = ofTag(plan(spec, world.observation), "Delete").filter((a) => !protectedIds.has(a.id) && a.reason !== "rollout" && a.reason !== "surplus")
    const planned = new Set(ofTag(actions, "Delete").map((a) => a.id))
    if (ofTag(actions, "Delete").length < spec.deleteBatch) for (const action of unguarded) expect(planned.has(action.id)).toBe(true)
  }, runs)
})

describe("probeTargets", () => {
  it.prop("probes only starting rows the platform says run (or sleep), never claimed ones", { world: arbWorld }, ({ world }) => {
    for (const target of probeTargets(world.spec, world.observation.listing, world.observation.rows)) {
      const row = rowOf(world, target.id)
      expect(row.status).toBe("starting")
      expect(row.pool).toBe(world.spec.name)
      expect(target.url).toMatch(/^https:\/\//)
    }
  }, runs)
})

/** Warm rows (creating, starting, idle) that the plan keeps. */
const countWarm = (world: World, actions: ReadonlyArray<Action>) => {
  const leaving = new Set(ofTag(actions, "Delete").map((d) => d.id))
  const warm = mine(world).filter(
    (r) => (r.status === "creating" || r.status === "starting" || r.status === "idle") && !leaving.has(r.id)
  ).length
  return warm + ofTag(actions, "Adopt").filter((a) => deployPhase(a.service.deployStatus) !== "dead").length
}

/** A platform where every create succeeds and every service turns healthy: the plan's actions, applied. */
interface Model {
  readonly rows: ReadonlyArray<Instance>
  readonly services: ReadonlyArray<ServiceInfo>
  readonly now: number
  readonly next: number
  readonly initialTotal: number
  readonly pass: number
}

const healthyPlatform = (world: World): Model => {
  // Start from the world's rows of this pool, with the platform healthy from now on.
  const rows = mine(world)
  const listed = services(world).filter((s) => s.name.startsWith(world.spec.namePrefix))
  // A create that lands late is a service the plan did not count: the bound makes room for each.
  const late = world.lateWrites?.length ?? 0
  return { rows, services: listed, now: NOW, next: 0, initialTotal: Math.max(world.spec.maxTotal, rows.length + listed.length) + late, pass: 0 }
}

const observe = (model: Model): Observation => ({
  listing: Listing.Complete({ services: model.services }),
  rows: model.rows,
  health: new Map(model.rows.map((r) => [r.id, "ready" as const])),
  now: model.now,
  createAllowance: 1_000,
  requestedCreates: 0,
  incarnation: SELF,
  alive: new Set([SELF])
})

const step = (world: World, model: Model): Model => {
  let svc = [...model.services]
  // Creates of dead runs land now, whatever the rows say: the platform makes a second service of the name.
  for (const late of world.lateWrites ?? []) {
    if (late.pass !== model.pass) continue
    svc.push(new ServiceInfo({ serviceId: `late-${late.name}`, name: late.name, url: null, deployStatus: "QUEUED", image: null, createdAt: new Date(model.now) }))
  }
  const actions = plan(world.spec, { ...observe(model), listing: Listing.Complete({ services: svc }) })
  let rows = [...model.rows]
  let next = model.next
  const now = new Date(model.now)
  const set = (id: string, fields: Partial<Instance>) => {
    rows = rows.map((r) => (r.id === id ? new Instance({ ...r, ...fields, statusChangedAt: now }) : r))
  }
  for (const action of actions) {
    switch (action._tag) {
      case "Create": {
        const id = `c${next++}`
        const name = `${world.spec.namePrefix}${id}`
        rows.push(new Instance({ ...newInstance({ id, pool: world.spec.name, name, status: "starting", now }), serviceId: `s-${id}`, url: `https://${name}` }))
        svc.push(new ServiceInfo({ serviceId: `s-${id}`, name, url: `https://${name}`, deployStatus: "SUCCESS", image: null, createdAt: now }))
        break
      }
      case "Adopt":
        rows.push(new Instance({
          ...newInstance({ id: action.service.serviceId, pool: world.spec.name, name: action.service.name, status: "starting", now: action.service.createdAt }),
          serviceId: action.service.serviceId,
          url: action.service.url
        }))
        break
      case "RecordService":
        set(action.id, { status: "starting", serviceId: action.service.serviceId, url: action.service.url })
        break
      case "FinishCreate": {
        // The provider's create is idempotent by name: the row's service, completed or made.
        const row = rows.find((r) => r.id === action.id)!
        const existing = svc.find((s) => s.name === row.name)
        const service = existing ?? new ServiceInfo({ serviceId: `s-${row.id}`, name: row.name, url: `https://${row.name}`, deployStatus: "QUEUED", image: null, createdAt: now })
        if (existing === undefined) svc.push(service)
        set(action.id, { status: "starting", serviceId: service.serviceId, url: service.url })
        break
      }
      case "MarkIdle":
        set(action.id, { status: "idle", deployStatus: action.deployStatus })
        break
      case "Refresh":
        set(action.id, { deployStatus: action.deployStatus, url: action.url })
        break
      case "MarkCrashed":
        set(action.id, { status: "crashed" })
        break
      case "RemoveService":
        svc = svc.filter((s) => s.serviceId !== action.service.serviceId)
        break
      case "Delete":
        rows = rows.filter((r) => r.id !== action.id)
        if (action.serviceId !== null) svc = svc.filter((s) => s.serviceId !== action.serviceId)
        break
    }
  }
  // Dead services of the world stay dead; a healthy platform brings every other one up.
  svc = svc.map((s) =>
    deployPhase(s.deployStatus) === "dead" || s.deployStatus === "SUCCESS" ? s : new ServiceInfo({ ...s, deployStatus: "SUCCESS", url: s.url ?? `https://${s.name}` })
  )
  return { rows, services: svc, now: model.now + 30_000, next, initialTotal: model.initialTotal, pass: model.pass + 1 }
}

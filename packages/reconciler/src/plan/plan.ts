/**
 * The reconcile plan: a pure, synchronous, total function from (spec, observation) to actions.
 * No Effect, no clock, no I/O — everything it knows is in the observation. DESIGN §2's rules are
 * its specification; each has a property test in test/plan.rules.test.ts.
 */
import { type Instance, oldestFirst, warmStatuses } from "../domain/instance.js"
import { Action, type DeleteReason, healthOf, type Listing, type Observation, runtimeVersionOf } from "../domain/observation.js"
import type { PoolSpec } from "../domain/pool-spec.js"
import { type DeployPhase, deployPhase, type ServiceInfo } from "../domain/service.js"
import { isOutdated } from "../domain/template.js"
import { currentTemplate, rolloutStep } from "./rollout.js"

/** How a pool's rows line up with the platform's services. Shared by `plan` and `probeTargets`. */
interface Matching {
  readonly complete: boolean
  /** The row's service, when the listing (complete, or recent: then for ownership only) shows it. */
  readonly serviceOf: (row: Instance) => ServiceInfo | undefined
  /** The listed service with this name, if any. */
  readonly named: (name: string) => ServiceInfo | undefined
  /** The pool's services (those with its prefix). */
  readonly services: () => IterableIterator<ServiceInfo>
}

const match = (spec: PoolSpec, listing: Listing): Matching => {
  if (listing._tag === "Failed") {
    return { complete: false, serviceOf: () => undefined, named: () => undefined, services: () => [][Symbol.iterator]() }
  }
  const byId = new Map<string, ServiceInfo>()
  for (const service of listing.services) {
    if (service.name.startsWith(spec.namePrefix)) byId.set(service.serviceId, service)
  }
  // Most rows find their service by id; the by-name index is built only when one does not.
  let byName: Map<string, ServiceInfo> | undefined
  const named = (name: string) => {
    byName ??= new Map([...byId.values()].map((service) => [service.name, service]))
    return byName.get(name)
  }
  // A row is matched by its service id; rows that never recorded one (creating, old seed rows) by name.
  const serviceOf = (row: Instance) => (row.serviceId !== null ? byId.get(row.serviceId) : named(row.name))
  return { complete: listing._tag === "Complete", serviceOf, named, services: () => byId.values() }
}

/** The deploy phase of a row: from the listing when it shows the service, else the last recorded status. */
const phaseOf = (row: Instance, service: ServiceInfo | undefined): DeployPhase =>
  deployPhase(service !== undefined ? service.deployStatus : row.deployStatus)

/** Whether health decides this row's readiness: the platform says it runs (or says nothing at all). */
const worthProbing = (row: Instance, service: ServiceInfo | undefined): boolean => {
  const status = service !== undefined ? service.deployStatus : row.deployStatus
  const phase = deployPhase(status)
  // SLEEPING: a probe is a request, and a request is what wakes a sleeping service.
  return status === null || phase === "running" || phase === "sleeping"
}

const ownRows = (spec: PoolSpec, rows: ReadonlyArray<Instance>) => rows.filter((row) => row.pool === spec.name)

/** The rows whose health the next pass needs: `starting` rows with a URL that the platform says run. */
export const probeTargets = (
  spec: PoolSpec,
  listing: Listing,
  rows: ReadonlyArray<Instance>
): ReadonlyArray<{ readonly id: string; readonly url: string }> => {
  const mine = ownRows(spec, rows)
  const matching = match(spec, listing)
  const targets: Array<{ id: string; url: string }> = []
  for (const row of mine) {
    if (row.status !== "starting") continue
    const service = matching.complete ? matching.serviceOf(row) : undefined
    if (matching.complete && service === undefined) continue
    const url = service?.url ?? row.url
    if (url !== null && worthProbing(row, service)) targets.push({ id: row.id, url })
  }
  return targets
}

/**
 * Slow start (rule 5). After a pass in which a create failed, the next pass may try one; each pass whose
 * creates all succeeded doubles the allowance, up to `createBatch`. A pass that tried none keeps it.
 */
export const nextCreateAllowance = (
  spec: PoolSpec,
  previous: number,
  outcome: { readonly attempted: number; readonly failed: number }
): number => {
  if (outcome.failed > 0) return 1
  if (outcome.attempted === 0) return Math.min(Math.max(previous, 1), spec.createBatch)
  return Math.min(Math.max(previous, 1) * 2, spec.createBatch)
}

/** The allowance of a controller that has seen no failure yet. */
export const initialCreateAllowance = (spec: PoolSpec): number => spec.createBatch

export const plan = (spec: PoolSpec, observation: Observation): ReadonlyArray<Action> => {
  const { now } = observation
  const rows = ownRows(spec, observation.rows)
  const isProtected = (row: Instance) => observation.protectedIds?.has(row.id) === true
  const matching = match(spec, observation.listing)
  const { complete } = matching
  const current = currentTemplate(spec)
  /** Services some row owns (by id, or by name: a row still naming a service keeps it from being adopted). */
  const owned = new Set<string>()

  const updates: Array<Action> = []
  const deleteCandidates: Array<{ row: Instance; reason: DeleteReason; serviceId: string | null }> = []
  const age = (since: Date) => now - since.getTime()
  const seenLongEnough = (row: Instance) => age(row.createdAt) > spec.listingGraceMs

  /** Rows by name: a listed service with a row's name is that row's, or a duplicate of its service (rule 6). */
  const rowsByName = new Map<string, Instance>()

  for (const row of rows) {
    const listed = matching.serviceOf(row)
    rowsByName.set(row.name, row)
    // A recent (not fresh) listing only says which services rows own; what it says of them may be stale.
    const service = complete ? listed : undefined
    if (listed !== undefined) owned.add(listed.serviceId)
    const phase = phaseOf(row, service)
    // Rule 6: a row whose service is gone from a complete listing (and old enough to have shown up).
    const vanished = complete && service === undefined && seenLongEnough(row)

    switch (row.status) {
      case "creating": {
        // Rules 3, 4, 9: a create in flight counts toward the pool. One that another incarnation started (that
        // process died or stopped leading), or one of ours whose call is no longer under way (a pass cut short),
        // is abandoned at once; one of ours under way only when its call hung past createTimeout. An abandoned
        // create is finished, never started twice (a late landing of the first call is removed as a duplicate).
        if (!complete) break
        const underWay = observation.ownCreatesInFlight?.has(row.id) ?? true
        if (row.intentBy === observation.incarnation && underWay && age(row.statusChangedAt) <= spec.createTimeoutMs) break
        // Deployed: every step was done but the record. Otherwise the provider's create, idempotent by name,
        // completes what is there (variables, domain, image, deploy) or makes it.
        if (service !== undefined && service.deployStatus !== null) updates.push(Action.RecordService({ id: row.id, service }))
        else updates.push(Action.FinishCreate({ id: row.id }))
        break
      }
      case "deleting": {
        if (complete) deleteCandidates.push({ row, reason: "requested", serviceId: row.serviceId })
        break
      }
      case "starting":
      case "idle": {
        if (vanished) {
          // The service is gone; destroy is idempotent, so name it anyway in case the listing lagged.
          deleteCandidates.push({ row, reason: "orphan", serviceId: row.serviceId })
          break
        }
        if (complete && phase === "dead") {
          deleteCandidates.push({ row, reason: "dead", serviceId: row.serviceId })
          break
        }
        // Rule 10: a starting instance of an old template serves no claim yet: replace it at once.
        if (complete && row.status === "starting" && isOutdated(row, current)) {
          deleteCandidates.push({ row, reason: "rollout", serviceId: row.serviceId })
          break
        }
        if (row.status === "starting") {
          const answer = observation.health.get(row.id)
          if (healthOf(answer) === "ready" && worthProbing(row, service)) {
            updates.push(Action.MarkIdle({
              id: row.id,
              deployStatus: service?.deployStatus ?? row.deployStatus,
              url: service?.url ?? row.url,
              runtimeVersion: runtimeVersionOf(answer)
            }))
            break
          }
          // Rule 7: never healthy within stuckTimeout. SLEEPING is not death (the seed recreated sleepers in a loop).
          if (complete && phase !== "sleeping" && age(row.createdAt) > spec.stuckTimeoutMs) {
            deleteCandidates.push({ row, reason: "stuck", serviceId: row.serviceId })
            break
          }
        }
        pushRefresh(updates, row, service)
        break
      }
      case "claiming": {
        // Rules 7, 9: the outcome of the claim is unknown (the instance may be bound), so never back to idle.
        // A claim whose process is gone is crashed at once; one still in flight once it outlives the timeout.
        // Rows claimed before claims were stamped (no `intentBy`) only time out.
        const ours = row.intentBy === observation.incarnation
        const unheld = ours && observation.ownClaimsInFlight !== undefined && !observation.ownClaimsInFlight.has(row.id) &&
          age(row.statusChangedAt) > CLAIM_SETTLE_GRACE_MS
        if ((row.intentBy !== null && !ours && !observation.alive.has(row.intentBy)) || unheld) {
          updates.push(Action.MarkCrashed({ id: row.id, from: "claiming", reason: "claim-abandoned" }))
        } else if (age(row.statusChangedAt) > spec.claimTimeoutMs) {
          updates.push(Action.MarkCrashed({ id: row.id, from: "claiming", reason: "claim-timeout" }))
        }
        break
      }
      case "claimed":
      case "pending_acceptance": {
        // Rule 1: a claimed instance (or one awaiting its conversation's acceptance) only ever becomes crashed.
        if (vanished) updates.push(Action.MarkCrashed({ id: row.id, from: row.status, reason: "vanished" }))
        else if (complete && phase === "dead") {
          updates.push(Action.MarkCrashed({ id: row.id, from: row.status, reason: "dead" }))
        } else pushRefresh(updates, row, service)
        break
      }
      case "crashed":
      case "tainted":
        // Stays until dismissed (which marks it `deleting`).
        break
    }
  }

  // Rule 6: adopt prefixed services nobody owns, once the platform has had time to show their rows' creates.
  // A service with a row's name is never adopted (the insert would clash with the row forever). While the row is
  // still `creating`, its create decides which service of that name it keeps; after that, any other one is a
  // duplicate — a create of a dead run that landed after its row was finished — and is removed. Of several
  // services of one name that no row has, the oldest is adopted and the others are its duplicates.
  const unmatched = [...matching.services()].filter((service) => !owned.has(service.serviceId))
  const removes: Array<Action> = []
  const adopted: Array<ServiceInfo> = []
  if (complete) {
    const adoptedNames = new Set<string>()
    for (const service of [...unmatched].sort(oldestServiceFirst)) {
      const row = rowsByName.get(service.name)
      if (row !== undefined) {
        if (row.status !== "creating") removes.push(Action.RemoveService({ service, reason: "duplicate" }))
        continue
      }
      if (now - service.createdAt.getTime() <= spec.listingGraceMs) continue
      if (adoptedNames.has(service.name)) removes.push(Action.RemoveService({ service, reason: "duplicate" }))
      else {
        adoptedNames.add(service.name)
        adopted.push(service)
      }
    }
  }
  for (const service of adopted) updates.push(Action.Adopt({ service }))

  // Rule 11: above the autoscaling target, the oldest idle instances go (never below minIdle, never a claimed one);
  // during a rollout its surge is not surplus: the rollout's own drains bring the pool back to the target.
  const target = Math.max(spec.minIdle, observation.warmTarget ?? spec.minIdle)
  const waiting = Math.max(0, observation.waitingClaims ?? 0)
  const rolling = rows.some((row) => warmStatuses.includes(row.status) && isOutdated(row, current) && !isProtected(row))
  if (complete && observation.warmTarget !== undefined && !rolling) {
    const surplus = surplusIdle(rows.filter((row) => !isProtected(row)), target + waiting, new Set(deleteCandidates.map((c) => c.row.id)))
    for (const row of surplus) deleteCandidates.push({ row, reason: "surplus", serviceId: row.serviceId })
  }

  // Rule 5: deletes in batches; explicit requests first, then by how sure we are.
  // Services without a row go first: nothing depends on them, and they hold credentials of no one's.
  removes.splice(spec.deleteBatch)
  // Rule 13: a protected instance is never deleted, whatever the reason.
  const deletes = deleteCandidates
    .filter((c) => !isProtected(c.row))
    // Rule 5: deletes in batches; explicit requests first, then by how sure we are.
    .sort((a, b) => deleteOrder[a.reason] - deleteOrder[b.reason])
    .slice(0, spec.deleteBatch - removes.length)
    .map(({ reason, row, serviceId }) => Action.Delete({ id: row.id, from: row.status, serviceId, reason }))

  // Rules 4, 5, 8: fill the warm part of the pool, counting creates in flight, never past maxTotal.
  const leaving = new Set(deletes.map((d) => d.id))
  let warm = 0
  const idle: Array<Instance> = []
  for (const row of rows) {
    // A protected instance serves no claim: it is not part of the warm pool (rule 13).
    if ((row.status === "creating" || row.status === "starting" || row.status === "idle") && !leaving.has(row.id) && !isProtected(row)) {
      warm++
      if (row.status === "idle") idle.push(row)
    }
  }
  for (const service of adopted) if (deployPhase(service.deployStatus) !== "dead") warm++

  // Rule 10: old idle ones drained while idle stays at the target (minIdle, or autoscaling's), new ones made up to
  // maxSurge beyond it.
  const outdatedLeft = deleteCandidates.filter((c) => c.reason === "rollout" && !leaving.has(c.row.id) && !isProtected(c.row)).length
  const rollout = complete
    ? rolloutStep(spec, target, current, idle, warm, outdatedLeft, spec.deleteBatch - deletes.length)
    : { drain: [], surge: 0 }
  for (const row of rollout.drain) {
    deletes.push(Action.Delete({ id: row.id, from: "idle", serviceId: row.serviceId, reason: "rollout" }))
    leaving.add(row.id)
  }
  warm -= rollout.drain.length

  // Every row and every unowned service may be a running service: all count toward maxTotal.
  const total = rows.length + unmatched.length
  const fill = Math.max(0, target - warm)
  // Waiting claims raise the warm target: level-triggered, so a create in flight for one is not repeated.
  const waited = Math.max(0, target + waiting - warm) - fill
  const wanted = fill + rollout.surge + waited + Math.max(0, observation.requestedCreates)
  const creates = observation.listing._tag !== "Failed"
    ? Math.max(0, Math.min(wanted, spec.createBatch, observation.createAllowance, spec.maxTotal - total))
    : 0

  const created: Array<Action> = []
  for (let i = 0; i < creates; i++) {
    created.push(Action.Create({ reason: i < fill ? "fill" : i < fill + rollout.surge ? "rollout" : "requested" }))
  }

  // A drained row needs no status refresh: it is on its way out.
  const kept = rollout.drain.length === 0 ? updates : updates.filter((a) => !("id" in a) || !leaving.has(a.id))
  return backOff(now, observation.backoff, [...kept, ...removes, ...deletes, ...created])
}

const oldestServiceFirst = (a: ServiceInfo, b: ServiceInfo) =>
  a.createdAt.getTime() - b.createdAt.getTime() || a.serviceId.localeCompare(b.serviceId)

/**
 * A `claiming` row of this incarnation that none of its claims holds is crashed once it is this old: longer than a
 * claim's store call may take to hand the row to its claim, so a claim that just took it is never mistaken.
 */
export const CLAIM_SETTLE_GRACE_MS = 10_000

/** Adoption failed this many times in a row: the service is removed instead (rule 12). */
export const UNADOPTABLE_AFTER = 3

/**
 * What an action acts on, for counting its failures pass after pass (rule 12). Creates have none: each makes a
 * new row, and slow start paces them (rule 5).
 */
export const actionKey = (action: Action): string | undefined => {
  switch (action._tag) {
    case "Create":
      return undefined
    case "Adopt":
    case "RemoveService":
      return `${action._tag}:${action.service.serviceId}`
    default:
      return `${action._tag}:${action.id}`
  }
}

/**
 * Rule 12: an action that failed on earlier passes waits for its back-off to end instead of failing again every
 * pass. What ends it: success; the world changing so that the plan no longer proposes it (level-triggered: its
 * failures are forgotten); and, for a service that cannot be adopted, removing it once adoption has failed
 * `UNADOPTABLE_AFTER` times — a service without a row does not outlive the grace.
 */
const backOff = (now: number, backoff: Observation["backoff"], actions: ReadonlyArray<Action>): ReadonlyArray<Action> => {
  if (backoff === undefined || backoff.size === 0) return actions
  const kept: Array<Action> = []
  for (const action of actions) {
    const key = actionKey(action)
    const failing = key === undefined ? undefined : backoff.get(key)
    if (failing === undefined) kept.push(action)
    else if (action._tag === "Adopt" && failing.failures >= UNADOPTABLE_AFTER) {
      kept.push(Action.RemoveService({ service: action.service, reason: "unadoptable" }))
    } else if (now >= failing.retryAt) kept.push(action)
  }
  return kept
}

const deleteOrder: Record<DeleteReason, number> = { requested: 0, dead: 1, orphan: 2, stuck: 3, rollout: 4, surplus: 5 }

/** The oldest idle rows beyond `target` warm ones, rows already leaving not counted. */
const surplusIdle = (rows: ReadonlyArray<Instance>, target: number, leaving: ReadonlySet<string>): ReadonlyArray<Instance> => {
  const warm = rows.filter((row) => warmStatuses.includes(row.status) && !leaving.has(row.id))
  const idle = warm.filter((row) => row.status === "idle").sort(oldestFirst)
  return idle.slice(0, Math.max(0, warm.length - target))
}

/** Record a changed deploy status or URL, so the table shows what the platform shows. */
const pushRefresh = (updates: Array<Action>, row: Instance, service: ServiceInfo | undefined) => {
  if (service === undefined) return
  const url = service.url ?? row.url
  if (service.deployStatus !== row.deployStatus || url !== row.url) {
    updates.push(Action.Refresh({ id: row.id, status: row.status, deployStatus: service.deployStatus, url }))
  }
}

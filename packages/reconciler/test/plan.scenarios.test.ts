/** The failures of the pool manager we replace (DESIGN §8), as plain examples of what `plan` does instead. */
import { describe, expect, it } from "@effect/vitest"
import {
  type Action,
  deployPhase,
  type Health,
  Instance,
  type InstanceStatus,
  Listing,
  newInstance,
  type Observation,
  plan,
  PoolSpec,
  probeTargets,
  ServiceInfo,
  currentTemplate
} from "../src/index.js"

const NOW = Date.UTC(2026, 10, 24, 12, 0, 0)
const minutesAgo = (m: number) => new Date(NOW - m * 60_000)

const spec = new PoolSpec({
  name: "pool",
  namePrefix: "agent-",
  minIdle: 2,
  maxTotal: 6,
  template: { image: "runtime:latest", env: {} }
})

const row = (id: string, status: InstanceStatus, fields: Partial<Instance> = {}) =>
  new Instance({
    ...newInstance({ id, pool: "pool", name: `agent-${id}`, status, now: minutesAgo(30) }),
    serviceId: `svc-${id}`,
    url: `https://agent-${id}.example`,
    deployStatus: "SUCCESS",
    ...fields
  })

const service = (id: string, deployStatus: string | null, createdAt = minutesAgo(30)) =>
  new ServiceInfo({ serviceId: `svc-${id}`, name: `agent-${id}`, url: `https://agent-${id}.example`, deployStatus, image: "runtime:latest", createdAt })

const observe = (
  rows: ReadonlyArray<Instance>,
  services: ReadonlyArray<ServiceInfo> | "failed",
  health: Record<string, Health> = {}
): Observation => ({
  listing: services === "failed" ? Listing.Failed({ reason: "timeout" }) : Listing.Complete({ services }),
  rows,
  health: new Map(Object.entries(health)),
  now: NOW,
  createAllowance: spec.createBatch,
  requestedCreates: 0,
  incarnation: "self",
  alive: new Set(["self"])
})

const tags = (actions: ReadonlyArray<Action>) => actions.map((a) => a._tag)

describe("plan, on the seed's failures", () => {
  it("keeps a SLEEPING idle instance (the seed recreated sleepers in a loop)", () => {
    const rows = [row("a", "idle"), row("b", "idle")]
    const actions = plan(spec, observe(rows, [service("a", "SLEEPING"), service("b", "SUCCESS")]))
    expect(actions.filter((a) => a._tag !== "Refresh")).toEqual([])
  })

  it("deletes and creates nothing when the listing failed, though every service looks missing", () => {
    const rows = [row("a", "idle"), row("b", "starting", { createdAt: minutesAgo(60) })]
    expect(plan(spec, observe(rows, "failed"))).toEqual([])
  })

  it("marks a claimed instance whose service vanished crashed, never deletes it", () => {
    const actions = plan(spec, observe([row("a", "claimed"), row("b", "idle"), row("c", "idle")], [service("b", "SUCCESS"), service("c", "SUCCESS")]))
    expect(actions).toEqual([expect.objectContaining({ _tag: "MarkCrashed", id: "a", from: "claimed", reason: "vanished" })])
  })

  it("counts an instance awaiting acceptance as claimed: never deleted, crashed when its service dies", () => {
    const pending = row("a", "pending_acceptance", { createdAt: minutesAgo(600), statusChangedAt: minutesAgo(600) })
    const idle = [row("b", "idle"), row("c", "idle")]
    const healthy = [service("a", "SUCCESS"), service("b", "SUCCESS"), service("c", "SUCCESS")]
    // Long past every timeout, beside a full warm part: no action, and no create to replace it.
    expect(plan(spec, observe([pending, ...idle], healthy))).toEqual([])
    const dead = plan(spec, observe([pending, ...idle], [service("a", "CRASHED"), ...healthy.slice(1)]))
    expect(dead).toEqual([expect.objectContaining({ _tag: "MarkCrashed", id: "a", from: "pending_acceptance", reason: "dead" })])
  })

  it("leaves a tainted instance until dismissed, like a crashed one, and fills the pool beside it", () => {
    const actions = plan(spec, observe([row("a", "tainted"), row("b", "idle")], [service("a", "SUCCESS"), service("b", "SUCCESS")]))
    expect(tags(actions)).toEqual(["Create"])
    const gone = plan(spec, observe([row("a", "tainted"), row("b", "idle"), row("c", "idle")], [service("b", "SUCCESS"), service("c", "SUCCESS")]))
    expect(gone).toEqual([])
  })

  it("does not create again while its creates are still in flight", () => {
    const first = plan(spec, observe([], []))
    expect(tags(first)).toEqual(["Create", "Create"])
    const inFlight = [row("x", "creating", { serviceId: null, intentBy: "self" }), row("y", "creating", { serviceId: null, intentBy: "self" })].map(
      (r) => new Instance({ ...r, statusChangedAt: new Date(NOW), createdAt: new Date(NOW) })
    )
    expect(plan(spec, observe(inFlight, []))).toEqual([])
  })

  it("creates one instance per waiting claim beyond the warm target, once, and never past maxTotal", () => {
    const idleRows = [row("a", "idle"), row("b", "idle")]
    const listed = [service("a", "SUCCESS"), service("b", "SUCCESS")]
    const waiting = (n: number, rows: ReadonlyArray<Instance>, services: ReadonlyArray<ServiceInfo>) =>
      plan(spec, { ...observe(rows, services), waitingClaims: n }).filter((a) => a._tag === "Create")
    expect(waiting(0, idleRows, listed)).toEqual([])
    expect(waiting(3, idleRows, listed)).toEqual(Array.from({ length: 3 }, () => expect.objectContaining({ reason: "requested" })))
    // Their creates in flight count: the next pass does not repeat them.
    const inFlight = ["x", "y", "z"].map((id) => new Instance({ ...row(id, "creating", { serviceId: null }), statusChangedAt: new Date(NOW), createdAt: new Date(NOW) }))
    expect(waiting(3, [...idleRows, ...inFlight], listed)).toEqual([])
    // maxTotal (6) bounds them, whatever the demand.
    expect(waiting(50, idleRows, listed)).toHaveLength(4)
  })

  it("deletes an instance that never became healthy within the stuck timeout, and replaces it", () => {
    const stuck = row("a", "starting", { createdAt: minutesAgo(16) })
    const actions = plan(spec, observe([stuck, row("b", "idle")], [service("a", "SUCCESS"), service("b", "SUCCESS")], { a: "not-ready" }))
    expect(actions).toEqual([
      expect.objectContaining({ _tag: "Delete", id: "a", from: "starting", reason: "stuck", serviceId: "svc-a" }),
      expect.objectContaining({ _tag: "Create", reason: "fill" })
    ])
  })

  it("marks a starting instance idle once deployed and healthy", () => {
    const actions = plan(spec, observe([row("a", "starting"), row("b", "idle")], [service("a", "SUCCESS"), service("b", "SUCCESS")], { a: "ready" }))
    expect(actions).toEqual([expect.objectContaining({ _tag: "MarkIdle", id: "a", deployStatus: "SUCCESS" })])
  })

  it("marks idle with the URL the platform shows now, when the row was made without one (a Pod's address comes later)", () => {
    const actions = plan(spec, observe([row("a", "starting", { url: null }), row("b", "idle")], [service("a", "SUCCESS"), service("b", "SUCCESS")], { a: "ready" }))
    expect(actions).toEqual([expect.objectContaining({ _tag: "MarkIdle", id: "a", url: "https://agent-a.example" })])
  })

  it("turns a claim left in `claiming` by a dead server into crashed, not idle", () => {
    const claiming = row("a", "claiming", { statusChangedAt: minutesAgo(3) })
    const actions = plan(spec, observe([claiming, row("b", "idle"), row("c", "idle")], [service("a", "SUCCESS"), service("b", "SUCCESS"), service("c", "SUCCESS")]))
    expect(actions).toEqual([expect.objectContaining({ _tag: "MarkCrashed", id: "a", reason: "claim-timeout" })])
  })

  it("on a restart, finishes at once the creates and claims a killed server left, instead of waiting minutes", () => {
    // The killed server's creates: one fully deployed but unrecorded, one half-made (never deployed), one not made.
    const left = { statusChangedAt: minutesAgo(0.5), intentBy: "killed", serviceId: null }
    const rows = [row("a", "creating", left), row("b", "creating", left), row("c", "creating", left), row("d", "claiming", left), row("e", "idle")]
    const actions = plan(spec, observe(rows, [service("a", "SUCCESS"), service("b", null), service("e", "SUCCESS")]))
    expect(actions).toEqual([
      expect.objectContaining({ _tag: "RecordService", id: "a" }),
      expect.objectContaining({ _tag: "FinishCreate", id: "b" }),
      expect.objectContaining({ _tag: "FinishCreate", id: "c" }),
      expect.objectContaining({ _tag: "MarkCrashed", id: "d", reason: "claim-abandoned" })
    ])
    // The same rows, stamped by this run: in flight, left alone.
    const ours = rows.map((r) => new Instance({ ...r, intentBy: "self" }))
    expect(plan(spec, observe(ours, [service("a", "SUCCESS"), service("b", null), service("e", "SUCCESS")]))).toEqual([])
  })

  it("adopts a prefixed service without a row, and leaves other services alone", () => {
    const stray = new ServiceInfo({ ...service("z", "SUCCESS"), name: "agent-z" })
    const other = new ServiceInfo({ ...service("o", "SUCCESS"), name: "postgres" })
    const actions = plan(spec, observe([row("b", "idle"), row("c", "idle")], [stray, other, service("b", "SUCCESS"), service("c", "SUCCESS")]))
    expect(actions).toEqual([expect.objectContaining({ _tag: "Adopt", service: stray })])
  })

  it("never destroys for a deploy status it does not know", () => {
    expect(deployPhase("SOMETHING_NEW")).toBe("starting")
    expect(deployPhase("SLEEPING")).toBe("sleeping")
    expect(deployPhase("CRASHED")).toBe("dead")
  })

  it("probes sleeping and running starting instances (a probe is what wakes a sleeper)", () => {
    const rows = [row("a", "starting"), row("b", "starting"), row("c", "starting"), row("d", "idle")]
    const services = [service("a", "SLEEPING"), service("b", "BUILDING"), service("c", "SUCCESS"), service("d", "SUCCESS")]
    expect(probeTargets(spec, Listing.Complete({ services }), rows).map((t) => t.id)).toEqual(["a", "c"])
  })
})

describe("plan, with protected instances (PROTECTED_INSTANCES)", () => {
  it("does not count a protected idle instance as warm: the pool fills beside it", () => {
    const rows = [row("kept", "idle"), row("a", "idle")]
    const actions = plan(spec, { ...observe(rows, [service("kept", "SUCCESS"), service("a", "SUCCESS")]), protectedIds: new Set(["kept"]) })
    expect(tags(actions)).toEqual(["Create"])
  })

  it("leaves a protected instance whose service vanished, died or never became healthy", () => {
    const rows = [row("gone", "idle"), row("dead", "idle"), row("stuck", "starting", { createdAt: minutesAgo(60) })]
    const world = observe(rows, [service("dead", "FAILED"), service("stuck", "DEPLOYING")])
    expect(tags(plan(spec, world)).filter((t) => t === "Delete")).toHaveLength(3)
    expect(tags(plan(spec, { ...world, protectedIds: new Set(["gone", "dead", "stuck"]) }))).not.toContain("Delete")
  })

  it("does not roll out a protected instance of an old template, and the rollout ends without it", () => {
    const next = new PoolSpec({ ...spec, template: { image: "runtime:next", env: {} } })
    const rows = [row("old", "idle", { templateHash: "old" }), row("b", "idle"), row("c", "idle")].map((r) =>
      r.id === "old" ? r : new Instance({ ...r, templateHash: currentTemplate(next).hash }))
    const world = { ...observe(rows, ["old", "b", "c"].map((id) => service(id, "SUCCESS"))), protectedIds: new Set(["old"]) }
    expect(plan(next, world)).toEqual([])
  })
})

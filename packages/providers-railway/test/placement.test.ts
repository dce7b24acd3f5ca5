/**
 * Placement, tokens and volumes against the Railway emulator, which enforces Railway's limits: one
 * projectCreate and one volumeCreate per token per cooldown (429), a services-per-project cap, revoked tokens (401).
 */
import { describe, expect, it } from "@effect/vitest"
import { ComputeProvider, Controller, InstanceStore, LocalIncarnations, PoolSpec, ServiceUpgrader, SingleLeader } from "@warmpool/reconciler"
import { InMemoryCredentials, InMemoryHealth, InMemoryRuntime, InMemoryStore } from "@warmpool/reconciler/testing"
import { ConfigProvider, Context, Duration, Effect, Layer, Logger, Option, Redacted } from "effect"
import { type Placement, Railway, RAILWAY_PROJECT_HANDLE, RAILWAY_VOLUME_HANDLE, RailwayCompute, RailwayConfig, type RailwayOptions } from "../src/index.js"
import { type RailwayEmulatorOptions, startRailwayEmulator } from "../src/emulator/index.js"

type RailwayEmulator = Effect.Effect.Success<ReturnType<typeof startRailwayEmulator>>
class Emulator extends Context.Tag("test/PlacementEmulator")<Emulator, RailwayEmulator>() {}

const TOKENS = ["token-a", "token-b", "token-c"]
const COOLDOWN_MS = 300

const sharded = (servicesPerProject: number): Placement => ({ _tag: "sharded", workspaceId: "workspace-1", servicesPerProject, projectPrefix: "wp-shard-" })
const perInstance: Placement = { _tag: "project-per-instance", workspaceId: "workspace-1" }
const withSpare: Placement = { ...perInstance, spareProjects: 1 }

const optionsFor = (emulator: RailwayEmulator, overrides: Partial<RailwayOptions>): RailwayOptions =>
  emulator.providerOptions({
    token: Redacted.make(TOKENS[0]!),
    tokens: TOKENS.map((t) => Redacted.make(t)),
    tokenCooldown: Duration.millis(COOLDOWN_MS),
    orphanGrace: Duration.zero,
    ratePerSecond: 1_000,
    ratePerHour: 100_000,
    timeout: Duration.seconds(5),
    ...overrides
  })

const world = (overrides: Partial<RailwayOptions>, emulatorOptions: RailwayEmulatorOptions = {}) =>
  Layer.unwrapEffect(Effect.map(Emulator, (emulator) => RailwayCompute.layer(optionsFor(emulator, overrides)))).pipe(
    Layer.provideMerge(Layer.scoped(Emulator, startRailwayEmulator({
      deployMs: 50,
      accountToken: TOKENS[0]!,
      moreAccountTokens: TOKENS.slice(1),
      projectCreateEveryMs: COOLDOWN_MS,
      volumeCreateEveryMs: COOLDOWN_MS,
      ...emulatorOptions
    })))
  )

const request = (name: string) => ({ name, image: "img:v1", env: { PORT: "8080", SECRET: "s" } })
const ourProjects = (emulator: RailwayEmulator) => emulator.projects().filter((p) => p.id !== emulator.projectId)
const SPARE_PREFIX = "warmpool-spare-"
const isSpare = (project: { readonly name: string }) => project.name.startsWith(SPARE_PREFIX)
/** With a project per instance: the empty projects waiting for the next creates. */
const spareProjects = (emulator: RailwayEmulator) => ourProjects(emulator).filter(isSpare)
const instanceProjects = (emulator: RailwayEmulator) => ourProjects(emulator).filter((p) => !isSpare(p))

/** A provider on the emulator for the length of `use` (closing it is a restart). */
const withCompute = <A, E>(emulator: RailwayEmulator, overrides: Partial<RailwayOptions>, use: (compute: ComputeProvider["Type"]) => Effect.Effect<A, E>) =>
  Effect.scoped(Effect.flatMap(Layer.build(RailwayCompute.layer(optionsFor(emulator, overrides))), (context) => use(Context.get(context, ComputeProvider))))

describe("sharded placement", () => {
  it.live("fills projects up to RAILWAY_SERVICES_PER_PROJECT, lists them all in one request, retires an emptied one", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const compute = yield* ComputeProvider
      const created = yield* Effect.forEach(["a", "b", "c", "d", "e"].map((x) => `convos-agent-${x}`), (n) => compute.create(request(n)), { concurrency: "unbounded" })
      const projects = ourProjects(emulator)
      expect(projects.map((p) => p.name).sort()).toEqual(["wp-shard-1", "wp-shard-2", "wp-shard-3"])
      const perProject = projects.map((p) => emulator.services().filter((s) => s.projectId === p.id).length).sort()
      expect(perProject).toEqual([1, 2, 2])
      // Each row records its project.
      for (const c of created) {
        const service = emulator.services().find((s) => s.id === c.serviceId)!
        expect(c.handles?.[RAILWAY_PROJECT_HANDLE]).toBe(service.projectId)
      }
      // Three projects made on three tokens: none waited for a cooldown.
      expect(new Set(emulator.creations().map((c) => c.token)).size).toBe(3)
      emulator.resetCounts()
      expect((yield* compute.list("convos-agent-")).map((s) => s.name).sort()).toEqual(["a", "b", "c", "d", "e"].map((x) => `convos-agent-${x}`))
      expect(emulator.operations()).toEqual({ ListWorkspaceProjects: 1 })
      // The project holding one service is emptied: the next listing retires it; the others stay.
      const lonely = projects.find((p) => emulator.services().filter((s) => s.projectId === p.id).length === 1)!
      const inIt = emulator.services().find((s) => s.projectId === lonely.id)!
      yield* compute.destroy(inIt.id)
      yield* compute.list("convos-agent-")
      expect(ourProjects(emulator).map((p) => p.name).sort()).toEqual(projects.filter((p) => p.id !== lonely.id).map((p) => p.name).sort())
      // A new create fills the project with room before making one.
      const [full] = ourProjects(emulator)
      yield* compute.destroy(emulator.services().find((s) => s.projectId === full!.id)!.id)
      yield* compute.create(request("convos-agent-f"))
      expect(ourProjects(emulator)).toHaveLength(2)
      expect(emulator.services().filter((s) => s.projectId === full!.id)).toHaveLength(2)
    }).pipe(Effect.provide(world({ placement: sharded(2) }))))

  it.live("a projectCreate whose answer never came: the listing finds the project by its name and uses it, no twin", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const compute = yield* ComputeProvider
      // The project exists at once; its answer comes after the client gave up (as when a run dies mid-create).
      emulator.delayProjectCreate(600)
      const created = yield* compute.create(request("convos-agent-a"))
      expect(ourProjects(emulator).map((p) => p.name)).toEqual(["wp-shard-1"])
      expect(emulator.services().find((s) => s.id === created.serviceId)!.projectId).toBe(ourProjects(emulator)[0]!.id)
    }).pipe(Effect.provide(world({ placement: sharded(3), timeout: Duration.millis(300) }))))
})

describe("project-per-instance placement", () => {
  it.live("makes a project named after each instance with its service inside; deleting the instance deletes its project", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const compute = yield* ComputeProvider
      const [a] = yield* Effect.forEach(["convos-agent-a", "convos-agent-b"], (n) => compute.create(request(n)), { concurrency: "unbounded" })
      expect(ourProjects(emulator).map((p) => p.name).sort()).toEqual(["convos-agent-a", "convos-agent-b"])
      for (const project of ourProjects(emulator)) {
        expect(emulator.services().filter((s) => s.projectId === project.id).map((s) => s.name)).toEqual([project.name])
      }
      yield* compute.destroy(a!.serviceId)
      expect(ourProjects(emulator).map((p) => p.name)).toEqual(["convos-agent-b"])
      // A project of ours with nothing in it (a create that never got further) is removed by the next listing;
      // another tool's project is left alone.
      emulator.addProject("convos-agent-half")
      emulator.addProject("someone-else")
      expect((yield* compute.list("convos-agent-")).map((s) => s.name)).toEqual(["convos-agent-b"])
      // By default, as in the replaced system, no project but the instances' (no spare).
      expect(emulator.projects().map((p) => p.name).sort()).toEqual(["convos-agent-b", "convos-agents", "someone-else"])
    }).pipe(Effect.provide(world({ placement: perInstance }))))

  it.live("RAILWAY_SPARE_PROJECTS=1: a create takes the waiting spare project and names it after its instance (no projectCreate); the next spare rides along in its launch", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      yield* withCompute(emulator, { placement: withSpare }, (compute) =>
        Effect.gen(function*() {
          yield* compute.create(request("convos-agent-a"))
          // The first create had to make its project; its launch request brought a spare along.
          const [spare, ...more] = spareProjects(emulator)
          expect(more).toEqual([])
          expect(emulator.services().filter((s) => s.projectId === spare!.id)).toEqual([])
          emulator.resetCounts()
          const projectsBefore = emulator.creations().filter((c) => c.kind === "project").length
          const b = yield* compute.create(request("convos-agent-b"))
          // Two requests: the service, then its launch, which named the spare after it and made the next spare.
          expect(emulator.operations()).toEqual({ ServiceCreateBatch: 1, ServiceLaunchBatch: 1 })
          expect(emulator.creations().filter((c) => c.kind === "project")).toHaveLength(projectsBefore + 1)
          const home = emulator.projects().find((p) => p.id === spare!.id)
          expect(home?.name).toBe("convos-agent-b")
          expect(emulator.services().find((s) => s.id === b.serviceId)?.projectId).toBe(spare!.id)
          expect(b.handles?.[RAILWAY_PROJECT_HANDLE]).toBe(spare!.id)
          const [next] = spareProjects(emulator)
          expect(next).toBeDefined()
          expect(next!.id).not.toBe(spare!.id)
        }))
      const [waiting] = spareProjects(emulator)
      // After a restart the spare is adopted by the listing and taken by the next create.
      yield* withCompute(emulator, { placement: withSpare }, (compute) =>
        Effect.gen(function*() {
          expect((yield* compute.list("convos-agent-")).map((s) => s.name).sort()).toEqual(["convos-agent-a", "convos-agent-b"])
          const c = yield* compute.create(request("convos-agent-c"))
          expect(c.handles?.[RAILWAY_PROJECT_HANDLE]).toBe(waiting!.id)
          expect(emulator.projects().find((p) => p.id === waiting!.id)?.name).toBe("convos-agent-c")
          // More spares than wanted (another run's, an older setting's): the listing keeps one.
          emulator.addProject(`${SPARE_PREFIX}0000000a`)
          emulator.addProject(`${SPARE_PREFIX}0000000b`)
          yield* compute.list("convos-agent-")
          expect(spareProjects(emulator)).toHaveLength(1)
        }))
      // RAILWAY_SPARE_PROJECTS=0: the spare goes, and creates make their projects themselves.
      yield* withCompute(emulator, { placement: { ...perInstance, spareProjects: 0 } }, (compute) =>
        Effect.gen(function*() {
          yield* compute.list("convos-agent-")
          expect(spareProjects(emulator)).toEqual([])
          yield* compute.create(request("convos-agent-d"))
          yield* Effect.sleep(Duration.millis(2 * COOLDOWN_MS))
          expect(spareProjects(emulator)).toEqual([])
          expect(instanceProjects(emulator).map((p) => p.name).sort()).toEqual(["a", "b", "c", "d"].map((x) => `convos-agent-${x}`))
        }))
    }).pipe(Effect.provide(Layer.scoped(Emulator, startRailwayEmulator({
      deployMs: 20,
      accountToken: TOKENS[0]!,
      moreAccountTokens: TOKENS.slice(1),
      projectCreateEveryMs: COOLDOWN_MS,
      volumeCreateEveryMs: COOLDOWN_MS
    })))))
})

/** A project made by another client of Railway with `token`: that token may make no other for a cooldown. */
const projectCreateElsewhere = (emulator: RailwayEmulator, token: string, name: string) =>
  Effect.promise(() =>
    fetch(emulator.apiUrl, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: "mutation M($i: ProjectCreateInput!) { projectCreate(input: $i) { id } }", variables: { i: { name, workspaceId: emulator.workspaceId } } })
    }).then((r) => expect(r.status).toBe(200))
  )

describe("spare projects when Railway refuses the creation", () => {
  it.live("a launch whose spare Railway refuses (the token was used elsewhere) goes again without it; the spare comes once a token is free", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const compute = yield* ComputeProvider
      yield* projectCreateElsewhere(emulator, TOKENS[1]!, "someone-else-b")
      yield* projectCreateElsewhere(emulator, TOKENS[2]!, "someone-else-c")
      const a = yield* compute.create(request("convos-agent-a"))
      expect(emulator.services().find((s) => s.id === a.serviceId)?.deployments).toHaveLength(1)
      // Sent with the spare on a token the provider thought free, refused whole (nothing ran), then alone.
      expect(emulator.operations().ServiceLaunchBatch).toBe(2)
      for (let tries = 0; tries < 40 && spareProjects(emulator).length === 0; tries++) yield* Effect.sleep(Duration.millis(100))
      expect(spareProjects(emulator)).toHaveLength(1)
      expect(ourProjects(emulator).filter((p) => !p.name.startsWith("someone-else")).map((p) => p.name).filter((n) => !isSpare({ name: n }))).toEqual(["convos-agent-a"])
    }).pipe(Effect.provide(world({ placement: withSpare }))))
})

/** What the provider logs, its background fibers included (the logger is in place before the layer is built). */
const logs: Array<string> = []
const capture = Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => logs.push(String(message))))

describe("tokens", () => {
  it.live("creations spread over the tokens and wait while all cool; a revoked token is dropped, logged once by position, and slows nothing else", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const compute = yield* ComputeProvider
      const railway = yield* Railway
      emulator.revoke(TOKENS[1]!)
      const started = Date.now()
      const names = Array.from({ length: 6 }, (_, i) => `convos-agent-t${i}`)
      // One at a time so that each needs a project of its own on a token.
      for (const name of names) yield* compute.create(request(name))
      const elapsed = Date.now() - started
      const creations = emulator.creations().filter((c) => c.kind === "project")
      expect(creations).toHaveLength(6)
      expect(new Set(creations.map((c) => c.token))).toEqual(new Set([TOKENS[0], TOKENS[2]]))
      // Two tokens left, six projects: at least two cooldowns waited, and about no more.
      expect(elapsed).toBeGreaterThanOrEqual(2 * COOLDOWN_MS - 50)
      expect(elapsed).toBeLessThan(6 * COOLDOWN_MS)
      const refusals = logs.filter((l) => l.includes("refused API token"))
      expect(refusals).toEqual([expect.stringContaining("token 2 of 3")])
      expect(logs.join("\n")).not.toContain(TOKENS[1])
      expect((yield* railway.usage).tokens.dropped).toBe(1)
      // Listing never waits on the creations' tokens.
      const listStarted = Date.now()
      yield* compute.list("convos-agent-")
      expect(Date.now() - listStarted).toBeLessThan(COOLDOWN_MS)
    }).pipe(Effect.provide(world({ placement: perInstance })), Effect.provide(capture)))

  it.live("the token ordinary calls use is replaced when Railway refuses it", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const compute = yield* ComputeProvider
      emulator.addService("convos-agent-x")
      emulator.revoke(TOKENS[0]!)
      expect((yield* compute.list("convos-agent-")).map((s) => s.name)).toEqual(["convos-agent-x"])
      expect((yield* Effect.flatMap(Railway, (r) => r.usage)).tokens).toMatchObject({ dropped: 1 })
    }).pipe(Effect.provide(world({}))))
})

describe("volumes", () => {
  it.live("each instance's volume exists before its first deploy; a redeploy keeps it; deleting the instance deletes it; orphans are removed", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const compute = yield* ComputeProvider
      const upgrader = yield* ServiceUpgrader
      const created = yield* Effect.forEach(["convos-agent-a", "convos-agent-b"], (n) => compute.create(request(n)), { concurrency: "unbounded" })
      for (const service of emulator.services()) {
        expect(service.deployments).toHaveLength(1)
        expect(service.deployments[0]!.volume).toBe("/data")
      }
      const volumes = emulator.volumes()
      expect(volumes.map((v) => v.name).sort()).toEqual(["convos-agent-a", "convos-agent-b"])
      expect(volumes.every((v) => v.sizeMB === 2_048)).toBe(true)
      expect(created.map((c) => c.handles?.[RAILWAY_VOLUME_HANDLE]).sort()).toEqual(volumes.map((v) => v.id).sort())
      // A rollout of a claimed instance redeploys it in place: the same volume.
      yield* upgrader.redeploy(created[0]!.serviceId, { image: "img:v2", env: { PORT: "8080" } })
      const upgraded = emulator.services().find((s) => s.id === created[0]!.serviceId)!
      expect(upgraded.deployments.at(-1)).toMatchObject({ image: "img:v2", volume: "/data" })
      expect(emulator.volumes()).toHaveLength(2)
      yield* compute.destroy(created[0]!.serviceId)
      expect(emulator.volumes().map((v) => v.name)).toEqual(["convos-agent-b"])
      // A volume of ours whose service is gone, and another tool's: only ours goes.
      const ownerless = emulator.addVolume("convos-agent-gone", emulator.projectId)
      emulator.addVolume("postgres-data", emulator.projectId)
      yield* compute.list("convos-agent-")
      expect(emulator.volumes().map((v) => v.name).sort()).toEqual(["convos-agent-b", "postgres-data"])
      expect(emulator.volumes().some((v) => v.id === ownerless.id)).toBe(false)
    }).pipe(Effect.provide(world({ volume: { mountPath: "/data", sizeMB: Option.some(2_048) } }))))

  it.live("a create resumed after a crash between volumeCreate and the launch uses the volume there is and names it", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const compute = yield* ComputeProvider
      // What a dead run left: the service (never deployed) and its volume, not yet named after it.
      const bare = yield* Effect.promise(() =>
        fetch(emulator.apiUrl, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${TOKENS[0]}` },
          body: JSON.stringify({
            query: "mutation M($i: ServiceCreateInput!) { serviceCreate(input: $i) { id } }",
            variables: { i: { projectId: emulator.projectId, environmentId: emulator.environments[0]!.id, name: "convos-agent-half" } }
          })
        }).then((r) => r.json() as Promise<{ data: { serviceCreate: { id: string } } }>)
      )
      const left = emulator.addVolume("volume-7", emulator.projectId, bare.data.serviceCreate.id)
      const created = yield* compute.create(request("convos-agent-half"))
      expect(created.serviceId).toBe(bare.data.serviceCreate.id)
      expect(emulator.volumes().map((v) => [v.id, v.name])).toEqual([[left.id, "convos-agent-half"]])
      expect(emulator.services()[0]!.deployments.map((d) => d.volume)).toEqual(["/data"])
    }).pipe(Effect.provide(world({ volume: { mountPath: "/data", sizeMB: Option.none() } }))))

  it.live("no first deploy without its volume: while Railway refuses volumes (429), the service waits undeployed", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const compute = yield* ComputeProvider
      yield* compute.create(request("convos-agent-a"))
      // The only token made a volume just now; Railway allows the next one 1.5 s later.
      const second = yield* Effect.fork(compute.create(request("convos-agent-b")))
      yield* Effect.sleep(Duration.millis(900))
      const waiting = emulator.services().find((s) => s.name === "convos-agent-b")
      expect(waiting?.deployments).toEqual([])
      expect(emulator.volumes().some((v) => v.serviceId === waiting?.id)).toBe(false)
      yield* second.await
      const [first] = emulator.services().find((s) => s.name === "convos-agent-b")!.deployments
      expect(first?.volume).toBe("/data")
      expect((yield* Effect.flatMap(Railway, (r) => r.usage)).rateLimited).toBeGreaterThanOrEqual(1)
    }).pipe(Effect.provide(world(
      { tokens: [Redacted.make(TOKENS[0]!)], volume: { mountPath: "/data", sizeMB: Option.none() } },
      { volumeCreateEveryMs: 1_500 }
    ))))
})

/** A pool's whole life on Railway in one placement: fill, claim, roll out, drain. */
const lifecycle = (placement: Placement) =>
  Effect.gen(function*() {
    const emulator = yield* Emulator
    const spec = new PoolSpec({ name: "p", namePrefix: "convos-agent-", minIdle: 3, maxTotal: 10, template: { image: "img:v1", env: { PORT: "8080" } } })
    const v2 = new PoolSpec({ ...spec, template: { image: "img:v2", env: { PORT: "8080" } } })
    const settle = (controller: Controller["Type"], done: Effect.Effect<boolean, unknown, InstanceStore>) =>
      Effect.gen(function*() {
        for (let pass = 0; pass < 40; pass++) {
          yield* controller.runPass
          if (yield* done) return
          yield* Effect.sleep(Duration.millis(60))
        }
        throw new Error("the pool did not settle")
      })
    const rows = Effect.flatMap(InstanceStore, (store) => store.list("p"))
    const services = (tag: string) => emulator.services().filter((s) => s.projectId !== emulator.projectId || tag === "shared")
    const shared = Layer.mergeAll(InMemoryStore.layer, InMemoryHealth.layer("ready"), InMemoryCredentials.layer, InMemoryRuntime.layer(), SingleLeader, LocalIncarnations.layer())
    const compute = RailwayCompute.layer(optionsFor(emulator, { placement, volume: { mountPath: "/data", sizeMB: Option.none() } }))
    return yield* Effect.gen(function*() {
      const first = yield* Controller.make(spec, { background: false })
      yield* settle(first, Effect.map(rows, (all) => all.filter((r) => r.status === "idle").length === 3))
      const claimed = yield* first.claim({ label: "x" })
      yield* settle(first, Effect.map(rows, (all) => all.filter((r) => r.status === "idle").length === 3))
      expect(services(placement._tag).filter((s) => s.name.startsWith("convos-agent-"))).toHaveLength(4)
      // Rollout: the unclaimed ones move to v2; the claimed one keeps its service and its volume.
      const claimedVolume = emulator.volumes().find((v) => v.serviceId === claimed.instance.serviceId)
      expect(claimedVolume).toBeDefined()
      const second = yield* Controller.make(v2, { background: false })
      yield* settle(second, Effect.map(rows, (all) => all.filter((r) => r.status === "idle" && r.runtimeImage === "img:v2").length === 3 && all.length === 4))
      expect(emulator.volumes().find((v) => v.id === claimedVolume!.id)?.serviceId).toBe(claimed.instance.serviceId)
      // Every service has its volume, and the rows record their projects.
      const live = yield* rows
      for (const row of live) {
        expect(emulator.volumes().some((v) => v.serviceId === row.serviceId)).toBe(true)
        if (placement._tag !== "shared") {
          expect(row.handles[RAILWAY_PROJECT_HANDLE]).toBe(emulator.services().find((s) => s.id === row.serviceId)!.projectId)
        }
      }
      // Drain: the idle ones go with their volumes (and their projects), the claimed one stays.
      const drained = yield* second.drain(3)
      expect(drained).toHaveLength(3)
      const lessWarm = new PoolSpec({ ...v2, minIdle: 0 })
      const third = yield* Controller.make(lessWarm, { background: false })
      yield* settle(third, Effect.map(rows, (all) => all.length === 1))
      yield* third.runPass
      const left = emulator.services().filter((s) => s.name.startsWith("convos-agent-"))
      expect(left.map((s) => s.id)).toEqual([claimed.instance.serviceId])
      expect(emulator.volumes().map((v) => v.serviceId)).toEqual([claimed.instance.serviceId])
      if (placement._tag !== "shared") {
        // No project is left empty but the spares waiting for the next creates, if any are wanted.
        const holding = ourProjects(emulator).filter((p) => emulator.services().some((s) => s.projectId === p.id))
        const empty = ourProjects(emulator).filter((p) => !holding.includes(p))
        const wanted = placement._tag === "project-per-instance" ? placement.spareProjects ?? 0 : 0
        expect(empty.filter((p) => !isSpare(p))).toEqual([])
        expect(empty.length).toBeLessThanOrEqual(wanted)
      }
    }).pipe(Effect.provide(Layer.merge(compute, shared)), Effect.scoped)
  })

describe("a pool fills, claims, rolls out and drains in each placement", () => {
  for (const placement of [{ _tag: "shared" } as const, perInstance, withSpare, sharded(2)]) {
    it.live(placement === withSpare ? "project-per-instance with a spare project" : placement._tag, () => lifecycle(placement).pipe(Effect.provide(Layer.scoped(Emulator, startRailwayEmulator({
      deployMs: 20,
      accountToken: TOKENS[0]!,
      moreAccountTokens: TOKENS.slice(1),
      projectCreateEveryMs: 50,
      volumeCreateEveryMs: 50
    })))), 30_000)
  }
})

describe("configuration", () => {
  const fromEnv = (env: Record<string, string>) => Effect.withConfigProvider(RailwayConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))
  it.effect("reads RAILWAY_PLACEMENT, RAILWAY_TEAM_ID, RAILWAY_SERVICES_PER_PROJECT, RAILWAY_API_TOKENS, the cooldown and the volume; refuses what cannot work", () =>
    Effect.gen(function*() {
      const shared = yield* fromEnv({ RAILWAY_API_TOKEN: "t", RAILWAY_PROJECT_ID: "p", RAILWAY_ENVIRONMENT_NAME: "production" })
      expect(shared.placement).toEqual({ _tag: "shared" })
      expect(shared.volume).toBeUndefined()
      expect(Duration.toMillis(Duration.decode(shared.tokenCooldown!))).toBe(30_000)
      const sharded = yield* fromEnv({
        RAILWAY_API_TOKENS: "a, b ,c",
        RAILWAY_PLACEMENT: "sharded",
        RAILWAY_TEAM_ID: "team-1",
        RAILWAY_SERVICES_PER_PROJECT: "10",
        RAILWAY_TOKEN_COOLDOWN_MS: "5000",
        RAILWAY_VOLUME_MOUNT_PATH: "/data",
        RAILWAY_VOLUME_SIZE_MB: "1024",
        RAILWAY_ENVIRONMENT_NAME: "production"
      })
      expect(sharded.placement).toEqual({ _tag: "sharded", workspaceId: "team-1", servicesPerProject: 10, projectPrefix: "warmpool-shard-" })
      expect(sharded.tokens!.map(Redacted.value)).toEqual(["a", "b", "c"])
      expect(Redacted.value(sharded.token)).toBe("a")
      expect(sharded.volume).toEqual({ mountPath: "/data", sizeMB: Option.some(1024) })
      expect(Duration.toMillis(Duration.decode(sharded.tokenCooldown!))).toBe(5_000)
      const perInstanceConfig = yield* fromEnv({ RAILWAY_API_TOKEN: "t", RAILWAY_PLACEMENT: "project-per-instance", RAILWAY_TEAM_ID: "team-1", RAILWAY_ENVIRONMENT_NAME: "production" })
      expect(perInstanceConfig.placement).toEqual({ _tag: "project-per-instance", workspaceId: "team-1", spareProjects: 0, projectPrefix: "warmpool-spare-" })
      const moreSpares = yield* fromEnv({
        RAILWAY_API_TOKEN: "t",
        RAILWAY_PLACEMENT: "project-per-instance",
        RAILWAY_TEAM_ID: "team-1",
        RAILWAY_SPARE_PROJECTS: "3",
        RAILWAY_PROJECT_PREFIX: "agents-next-",
        RAILWAY_ENVIRONMENT_NAME: "production"
      })
      expect(moreSpares.placement).toEqual({ _tag: "project-per-instance", workspaceId: "team-1", spareProjects: 3, projectPrefix: "agents-next-" })
      const refused = (env: Record<string, string>) => Effect.map(Effect.flip(fromEnv({ RAILWAY_ENVIRONMENT_NAME: "production", ...env })), String)
      expect(yield* refused({ RAILWAY_API_TOKEN: "t", RAILWAY_PLACEMENT: "sharded" })).toContain("RAILWAY_TEAM_ID")
      expect(yield* refused({ RAILWAY_API_TOKEN: "t" })).toContain("RAILWAY_PROJECT_ID")
      expect(yield* refused({ RAILWAY_PROJECT_ID: "p" })).toContain("RAILWAY_API_TOKENS")
      expect(yield* refused({ RAILWAY_API_TOKEN: "t", RAILWAY_PROJECT_ID: "p", RAILWAY_PLACEMENT: "galaxy" })).toContain("RAILWAY_PLACEMENT")
      expect(yield* refused({ RAILWAY_API_TOKEN: "t", RAILWAY_PROJECT_ID: "p", RAILWAY_VOLUME_MOUNT_PATH: "data" })).toContain("absolute path")
      for (const spares of ["11", "-1", "one"]) {
        expect(yield* refused({ RAILWAY_API_TOKEN: "t", RAILWAY_PLACEMENT: "project-per-instance", RAILWAY_TEAM_ID: "team-1", RAILWAY_SPARE_PROJECTS: spares })).toContain("RAILWAY_SPARE_PROJECTS")
      }
    }))
})

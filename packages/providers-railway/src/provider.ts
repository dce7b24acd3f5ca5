/**
 * `ComputeProvider` over Railway. One paginated, environment-scoped query lists a pool per pass (never one
 * query per service). Creates are batched: the creates that arrive together cost two requests whatever
 * their number — the services (aliased `serviceCreate`s), then their domains and one environment commit
 * that gives each its image and variables and deploys each once, so every first deploy starts with its
 * variables and domain (the seed lost about one instance in ten otherwise). Nothing is read back that a
 * mutation already answered. When a batch fails, its creates are completed from one listing: a retried or
 * resumed create finishes the service it began (found by name) instead of making a twin.
 */
import {
  ComputeProvider,
  type CreatedService,
  type CreateServiceRequest,
  InvalidRequestError,
  makeGroupCommit,
  NotFoundError,
  type ProviderError,
  retryRemote,
  ServiceInfo,
  ServiceUpgrader,
  TransientError
} from "@warmpool/reconciler"
import { Clock, Context, Duration, Effect, Either, Layer, Option, Schedule, type Scope } from "effect"
import { randomBytes } from "node:crypto"
import { makeRailwayClient, type RequestOptions } from "./client.js"
import { type Placement, RailwayConfig, type RailwayOptions, SPARE_PROJECT_PREFIX, type TokenKind } from "./config.js"
import * as Ops from "./operations.js"
import { isTight, type RailwayUsage } from "./usage.js"

interface InstanceNode {
  readonly serviceId: string
  readonly serviceName: string
  readonly createdAt: string
  readonly source: { readonly image: string | null } | null
  readonly latestDeployment: { readonly status: string } | null
  readonly domains: { readonly serviceDomains: ReadonlyArray<{ readonly domain: string }> }
}

interface VolumeNode {
  readonly volumeId: string
  readonly serviceId: string | null
  readonly createdAt: string
  readonly volume: { readonly name: string }
}

interface Connection<N> {
  readonly edges: ReadonlyArray<{ readonly node: N }>
  readonly pageInfo: { readonly hasNextPage: boolean; readonly endCursor: string | null }
}

interface EnvironmentNode {
  readonly id: string
  readonly name: string
  readonly serviceInstances: Connection<InstanceNode>
  readonly volumeInstances?: Connection<VolumeNode>
}

interface ProjectNode {
  readonly id: string
  readonly name: string
  readonly createdAt: string
  readonly environments: { readonly edges: ReadonlyArray<{ readonly node: EnvironmentNode }> }
}

/** The row's handles the Railway provider keeps: the project a service lives in, and its volume. */
export const RAILWAY_PROJECT_HANDLE = "railwayProjectId"
export const RAILWAY_VOLUME_HANDLE = "railwayVolumeId"

/** Where a service lives. */
interface Home {
  readonly projectId: string
  readonly environmentId: string
}

/** A service of the pool's projects (or of the shared environment), where it lives and its volume. */
interface ListedService {
  readonly info: ServiceInfo
  readonly home: Home
  readonly volumeId: string | null
}

interface ListedVolume {
  readonly id: string
  readonly name: string
  readonly serviceId: string | null
  readonly createdAt: number
}

/** A project the pool owns, as the last listing (and the creates since) saw it. */
interface OwnedProject {
  readonly id: string
  readonly name: string
  readonly createdAt: number
  readonly environmentId: string
  /** Services in it. */
  services: number
}

interface Listing {
  readonly services: ReadonlyArray<ListedService>
  readonly volumes: ReadonlyArray<ListedVolume>
  readonly projects: ReadonlyArray<OwnedProject>
}

/** What `projectCreate` answers (fragment `CreatedProject`). */
interface CreatedProjectAnswer {
  readonly id: string
  readonly name: string
  readonly createdAt: string
  readonly environments: { readonly edges: ReadonlyArray<{ readonly node: { readonly id: string; readonly name: string } }> }
}

/** One environment's services and volumes, page by page. */
interface EnvironmentPages {
  readonly after: string | null
  readonly volumesAfter: string | null
  readonly moreServices: boolean
  readonly moreVolumes: boolean
  readonly instances: ReadonlyArray<InstanceNode>
  readonly volumes: ReadonlyArray<VolumeNode>
}

/** What the provider knows once connected: the token's kind and the environment's id. */
export interface RailwayContext {
  readonly kind: TokenKind
  readonly placement: Placement
  /** The shared placement's project and environment (empty with projects of the pool's own). */
  readonly projectId: string
  readonly projectName: string
  readonly environmentId: string
  /** With projects of the pool's own: what their environment is called. */
  readonly environmentName: string
}

export const connect = (options: RailwayOptions) =>
  Effect.gen(function*() {
    const client = yield* makeRailwayClient(options)
    const kind: TokenKind = options.tokenKind !== "auto"
      ? options.tokenKind
      : yield* client.request("projectTokenScope", Ops.ProjectTokenScope, {}, "project", { probe: true }).pipe(
        Effect.as("project" as const),
        Effect.catchTag("UnauthorizedError", () => Effect.succeed("account" as const))
      )
    const request = <A>(operation: string, document: string, variables: object, requestOptions?: RequestOptions) =>
      Effect.map(client.request<A>(operation, document, variables, kind, requestOptions), (answer) => answer.data)
    const requestWithHeaders = <A>(operation: string, document: string, variables: object) =>
      client.request<A>(operation, document, variables, kind)
    const usage = client.usage
    const placement = options.placement ?? { _tag: "shared" }

    if (placement._tag !== "shared") {
      if (kind === "project") {
        return yield* new InvalidRequestError({
          operation: "railway.connect",
          message: `RAILWAY_PLACEMENT=${placement._tag} makes projects: it needs an account or workspace token, not a project token`
        })
      }
      const environmentName = "name" in options.environment ? options.environment.name : "production"
      const context: RailwayContext = { kind, placement, projectId: "", projectName: "", environmentId: "", environmentName }
      return { context, request, requestWithHeaders, usage }
    }

    const project = yield* request<{ project: { name: string; environments: { edges: ReadonlyArray<{ node: { id: string; name: string } }> } } }>(
      "projectEnvironments",
      Ops.ProjectEnvironments,
      { projectId: options.projectId }
    )
    const environments = project.project.environments.edges.map((e) => e.node)
    const wanted = options.environment
    const environment = "id" in wanted
      ? environments.find((e) => e.id === wanted.id)
      : environments.find((e) => e.name.toLowerCase() === wanted.name.toLowerCase())
    if (environment === undefined) {
      const asked = "id" in wanted ? `id ${wanted.id}` : `name "${wanted.name}"`
      return yield* new InvalidRequestError({
        operation: "railway.resolveEnvironment",
        message: `project ${options.projectId} has no environment with ${asked}; it has: ${environments.map((e) => `${e.name} (${e.id})`).join(", ") || "none"}`
      })
    }
    const context: RailwayContext = {
      kind,
      placement,
      projectId: options.projectId,
      projectName: project.project.name,
      environmentId: environment.id,
      environmentName: environment.name
    }
    return { context, request, requestWithHeaders, usage }
  })

/** One service to launch: made already, maybe with its domain (its URL, when it has one) and its volume. */
interface LaunchTarget extends CreateServiceRequest {
  readonly serviceId: string
  readonly url: string | null
  readonly home: Home
  readonly volumeId: string | null
  /** Its volume is to be named after it (made now, or made by a run that died before naming it). */
  readonly newVolume: boolean
}

/** Railway's environment config: image and variables for each service of the commit (other variables stay). */
export const environmentPatch = (
  targets: ReadonlyArray<{ readonly serviceId: string; readonly image: string; readonly env: Readonly<Record<string, string>> }>,
  volumes: { readonly ids: ReadonlyArray<string>; readonly sizeMB: Option.Option<number> } = { ids: [], sizeMB: Option.none() }
) => ({
  services: Object.fromEntries(targets.map((t) => [t.serviceId, {
    source: { image: t.image },
    variables: Object.fromEntries(Object.entries(t.env).map(([name, value]) => [name, { value }]))
  }])),
  ...Option.match(volumes.sizeMB, {
    onNone: () => ({}),
    onSome: (sizeMB) => (volumes.ids.length === 0 ? {} : { volumes: Object.fromEntries(volumes.ids.map((id) => [id, { sizeMB }])) })
  })
})

/** The Railway provider with what the server needs besides `ComputeProvider`. */
export interface RailwayPlatform {
  readonly compute: ComputeProvider["Type"]
  readonly context: RailwayContext
  readonly usage: Effect.Effect<RailwayUsage>
  readonly request: <A>(operation: string, document: string, variables: object, requestOptions?: RequestOptions) => Effect.Effect<A, ProviderError>
  /** Whether a webhook event of this environment may concern the pool (every environment of its projects does). */
  readonly ownsEnvironment: (environmentId: string) => boolean
  /** Where a service of the pool's lives: its project and environment (the shared ones, or its own project's). */
  readonly homeOf: (serviceId: string) => Effect.Effect<{ readonly projectId: string; readonly environmentId: string }, ProviderError>
}

/** The number a sharded project's name ends with, or null when it is not one of the pool's. */
const shardNumber = (name: string, prefix: string) => {
  if (!name.startsWith(prefix)) return null
  const rest = name.slice(prefix.length)
  return /^\d{1,6}$/.test(rest) ? Number(rest) : null
}

export const makePlatform = (options: RailwayOptions): Effect.Effect<RailwayPlatform, ProviderError, Scope.Scope> =>
  Effect.gen(function*() {
    const { context, request, usage } = yield* connect(options)
    const { placement } = context
    const scope = yield* Effect.scope
    const volume = options.volume
    const withVolumes = volume !== undefined
    const orphanGraceMs = Duration.toMillis(Duration.decode(options.orphanGrace ?? Duration.minutes(1)))
    /** Services one project holds: the sharded cap; one with a project per instance. */
    const perProject = placement._tag === "sharded" ? placement.servicesPerProject : 1
    // A page of projects carries at most about 500 services, and never more projects than RAILWAY_PAGE_SIZE.
    const projectsPerPage = Math.max(1, Math.min(options.pageSize, Math.floor(500 / perProject)))
    const servicesPerProjectPage = Math.min(options.pageSize, Math.max(perProject, 5))

    /** Where each known service lives and its volume: from listings, and from creates since. */
    const homes = new Map<string, { readonly home: Home; readonly volumeId: string | null }>()
    /** The pool's projects by name (placements with projects of their own). */
    const projects = new Map<string, OwnedProject>()
    /** Name prefixes `list` was asked for: with a project per instance, the projects named so are the pool's. */
    const prefixes = new Set<string>()
    /** Creates in flight: their names (a project per instance) and the projects they were placed in (sharded). */
    const creating = new Set<string>()
    const placedIn = new Map<string, number>()
    const allocation = yield* Effect.makeSemaphore(1)
    const sharedHome: Home = { projectId: context.projectId, environmentId: context.environmentId }

    /**
     * A project per instance: empty spare projects (by id) wait for the next creates, so that a refill skips the
     * projectCreate Railway limits per token. A spare once taken is never a spare again in this process, even if
     * a listing that began before its service was made still shows it empty (`takenSpares`, until it is gone).
     */
    const spareTarget = placement._tag === "project-per-instance" ? placement.spareProjects ?? 0 : 0
    const sparePrefix = placement._tag === "project-per-instance" ? placement.projectPrefix ?? SPARE_PROJECT_PREFIX : ""
    const isSpareName = (name: string) =>
      placement._tag === "project-per-instance" && name.startsWith(sparePrefix) && /^[a-z0-9]{8}$/.test(name.slice(sparePrefix.length))
    const spareName = () => `${sparePrefix}${randomBytes(4).toString("hex")}`
    const spares = new Map<string, OwnedProject>()
    const takenSpares = new Set<string>()
    /** Spares taken by creates still running. */
    const sparesInUse = new Set<string>()
    let toppingUp = false

    /** The oldest spare, now the create's: none when there is none. */
    const takeSpare = (): OwnedProject | undefined => {
      const [spare] = [...spares.values()].sort((a, b) => a.createdAt - b.createdAt)
      if (spare === undefined) return undefined
      spares.delete(spare.id)
      takenSpares.add(spare.id)
      sparesInUse.add(spare.id)
      return spare
    }

    const handlesOf = (home: Home, volumeId: string | null): Record<string, string> | undefined => {
      const handles: Record<string, string> = {}
      if (placement._tag !== "shared") handles[RAILWAY_PROJECT_HANDLE] = home.projectId
      if (volumeId !== null) handles[RAILWAY_VOLUME_HANDLE] = volumeId
      return Object.keys(handles).length === 0 ? undefined : handles
    }

    const toListed = (node: InstanceNode, home: Home, volumeId: string | null): ListedService => ({
      home,
      volumeId,
      info: new ServiceInfo({
        serviceId: node.serviceId,
        name: node.serviceName,
        url: node.domains.serviceDomains[0] ? `https://${node.domains.serviceDomains[0].domain}` : null,
        deployStatus: node.latestDeployment?.status ?? null,
        image: node.source?.image ?? null,
        createdAt: new Date(node.createdAt),
        handles: handlesOf(home, volumeId)
      })
    })

    /** The rest of one environment's services and volumes, from where a page left off. */
    const restOfEnvironment = (environmentId: string, from: EnvironmentPages) =>
      Effect.iterate(from, {
        while: (s) => s.moreServices || s.moreVolumes,
        body: (s) =>
          request<{ environment: EnvironmentNode }>("listServiceInstances", Ops.ListServiceInstances, {
            environmentId,
            first: options.pageSize,
            after: s.after,
            volumes: s.moreVolumes,
            volumesAfter: s.volumesAfter
          }).pipe(Effect.map(({ environment }): EnvironmentPages => {
            const services = environment.serviceInstances
            const volumes = environment.volumeInstances
            // A connection that had ended is asked again from its last cursor: what it answers is not new.
            return {
              after: s.moreServices ? services.pageInfo.endCursor ?? s.after : s.after,
              volumesAfter: s.moreVolumes && volumes !== undefined ? volumes.pageInfo.endCursor ?? s.volumesAfter : s.volumesAfter,
              moreServices: s.moreServices && services.pageInfo.hasNextPage,
              moreVolumes: s.moreVolumes && volumes !== undefined && volumes.pageInfo.hasNextPage,
              instances: s.moreServices ? [...s.instances, ...services.edges.map((e) => e.node)] : s.instances,
              volumes: s.moreVolumes && volumes !== undefined ? [...s.volumes, ...volumes.edges.map((e) => e.node)] : s.volumes
            }
          }))
      })

    /** Services and volumes of one environment, as listed services of `home`. */
    const listedOf = (home: Home, pages: EnvironmentPages) => {
      const volumeOf = new Map(pages.volumes.flatMap((v) => (v.serviceId === null ? [] : [[v.serviceId, v.volumeId] as const])))
      return {
        services: pages.instances.map((node) => toListed(node, home, volumeOf.get(node.serviceId) ?? null)),
        volumes: pages.volumes.map((v): ListedVolume => ({ id: v.volumeId, name: v.volume.name, serviceId: v.serviceId, createdAt: new Date(v.createdAt).getTime() }))
      }
    }

    const ownsProject = (name: string, asked: ReadonlySet<string>) =>
      placement._tag === "sharded"
        ? shardNumber(name, placement.projectPrefix) !== null
        : asked.has(name) || isSpareName(name) || [...prefixes].some((prefix) => name.startsWith(prefix))

    /** Every project of the workspace, one page of projects per request, each with its services and volumes. */
    const listProjects = (workspaceId: string, asked: ReadonlySet<string>) =>
      Effect.gen(function*() {
        const nodes = yield* Effect.iterate({ after: null as string | null, nodes: [] as ReadonlyArray<ProjectNode>, done: false }, {
          while: (s) => !s.done,
          body: (s) =>
            request<{ workspace: { projects: Connection<ProjectNode> } }>("listWorkspaceProjects", Ops.ListWorkspaceProjects, {
              workspaceId,
              first: projectsPerPage,
              after: s.after,
              services: servicesPerProjectPage,
              volumes: withVolumes
            }).pipe(Effect.map(({ workspace }) => ({
              after: workspace.projects.pageInfo.endCursor,
              nodes: [...s.nodes, ...workspace.projects.edges.map((e) => e.node).filter((p) => ownsProject(p.name, asked))],
              done: !workspace.projects.pageInfo.hasNextPage
            })))
        }).pipe(Effect.map((s) => s.nodes))
        const perProjectListing = yield* Effect.forEach(nodes, (node) =>
          Effect.gen(function*() {
            const environments = node.environments.edges.map((e) => e.node)
            const environment = environments.find((e) => e.name.toLowerCase() === context.environmentName.toLowerCase()) ?? environments[0]
            if (environment === undefined) return undefined // being made: no environment yet
            const home: Home = { projectId: node.id, environmentId: environment.id }
            const first: EnvironmentPages = {
              after: environment.serviceInstances.pageInfo.endCursor,
              volumesAfter: environment.volumeInstances?.pageInfo.endCursor ?? null,
              moreServices: environment.serviceInstances.pageInfo.hasNextPage,
              moreVolumes: environment.volumeInstances?.pageInfo.hasNextPage ?? false,
              instances: environment.serviceInstances.edges.map((e) => e.node),
              volumes: environment.volumeInstances?.edges.map((e) => e.node) ?? []
            }
            // More services than a page of projects carries: the rest from the environment itself.
            const pages = first.moreServices || first.moreVolumes ? yield* restOfEnvironment(environment.id, first) : first
            const listed = listedOf(home, pages)
            const project: OwnedProject = { id: node.id, name: node.name, createdAt: new Date(node.createdAt).getTime(), environmentId: environment.id, services: listed.services.length }
            return { ...listed, project }
          }), { concurrency: 4 })
        const found = perProjectListing.filter((p) => p !== undefined)
        return {
          services: found.flatMap((p) => p.services),
          volumes: found.flatMap((p) => p.volumes),
          projects: found.map((p) => p.project)
        } satisfies Listing
      })

    /**
     * One complete listing of everything the pool owns, whatever the prefix; what the provider knows of homes
     * and projects is refreshed from it. `asked`: names of projects that are the pool's (a create's).
     */
    const listOwned = (asked: ReadonlySet<string> = new Set()) =>
      Effect.gen(function*() {
        const sparesBefore = new Set(spares.keys())
        const listing: Listing = placement._tag === "shared"
          ? { ...listedOf(sharedHome, yield* restOfEnvironment(context.environmentId, { after: null, volumesAfter: null, moreServices: true, moreVolumes: withVolumes, instances: [], volumes: [] })), projects: [] }
          : yield* listProjects(placement.workspaceId, asked)
        for (const service of listing.services) homes.set(service.info.serviceId, { home: service.home, volumeId: service.volumeId })
        if (placement._tag !== "shared") {
          const seen = new Set(listing.projects.map((p) => p.name))
          for (const name of projects.keys()) if (!seen.has(name) && ownsProject(name, asked)) projects.delete(name)
          for (const project of listing.projects) projects.set(project.name, project)
        }
        if (placement._tag === "project-per-instance") {
          const listed = new Set(listing.projects.map((p) => p.id))
          for (const id of takenSpares) if (!listed.has(id) && !sparesInUse.has(id)) takenSpares.delete(id)
          // The spares are the empty ones never taken, newest first, and those made while the listing ran; as
          // many as wanted (the janitor removes the rest).
          const madeMeanwhile = [...spares.values()].filter((p) => !sparesBefore.has(p.id))
          const empty = listing.projects.filter((p) => isSpareName(p.name) && p.services === 0 && !takenSpares.has(p.id)).sort((a, b) => b.createdAt - a.createdAt)
          const kept = [...new Map([...madeMeanwhile, ...empty].map((p) => [p.id, p])).values()].slice(0, spareTarget)
          spares.clear()
          for (const project of kept) spares.set(project.id, project)
        }
        return listing
      })

    /** What the plan sees of the pool's services never includes what the janitor removes. */
    const removeOrphans = (listing: Listing, prefix: string) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const old = (createdAt: number) => now - createdAt >= orphanGraceMs
        const emptyProjects = placement._tag === "shared" ? [] : listing.projects.filter((p) =>
          p.services === 0 && old(p.createdAt) && !creating.has(p.name) && (placedIn.get(p.id) ?? 0) === 0 && !sparesInUse.has(p.id) &&
          (placement._tag === "sharded" || p.name.startsWith(prefix) || (isSpareName(p.name) && !spares.has(p.id)))
        )
        const living = new Set(listing.services.map((s) => s.info.serviceId))
        const strayVolumes = listing.volumes.filter((v) =>
          v.name.startsWith(prefix) && (v.serviceId === null || !living.has(v.serviceId)) && old(v.createdAt) && !creating.has(v.name)
        )
        const retire = (project: OwnedProject) =>
          request("projectDelete", Ops.ProjectDelete, { id: project.id }).pipe(
            Effect.catchTag("NotFoundError", () => Effect.void),
            Effect.tap(() => Effect.sync(() => projects.delete(project.name))),
            Effect.tap(() => Effect.logInfo(`railway: removed the pool's empty project ${project.name}`))
          )
        const removeVolume = (v: ListedVolume) =>
          request("volumeDelete", Ops.VolumeDelete, { volumeId: v.id }).pipe(
            Effect.catchTag("NotFoundError", () => Effect.void),
            Effect.tap(() => Effect.logInfo(`railway: removed the orphan volume ${v.name}`))
          )
        yield* Effect.forEach(strayVolumes, removeVolume, { discard: true })
        yield* Effect.forEach(emptyProjects, retire, { discard: true })
      }).pipe(
        // Cleaning up is best effort: the next listing sees what is left.
        Effect.catchAll((error) => Effect.logWarning(`railway: cleaning up orphans failed (${error._tag}: ${error.message})`))
      )

    const listAll = (prefix: string) =>
      Effect.gen(function*() {
        prefixes.add(prefix)
        const listing = yield* listOwned()
        if (placement._tag !== "shared" || withVolumes) yield* removeOrphans(listing, prefix)
        return listing.services.map((s) => s.info).filter((s) => s.name.startsWith(prefix))
      }).pipe(Effect.withSpan("RailwayCompute.list"))

    const projectInput = (name: string) => ({
      name,
      workspaceId: placement._tag === "shared" ? undefined : placement.workspaceId,
      defaultEnvironmentName: context.environmentName
    })

    /** A project Railway answered for, now known as the pool's. */
    const madeProject = (name: string, answer: CreatedProjectAnswer): Effect.Effect<OwnedProject, TransientError> => {
      const environment = answer.environments.edges.map((e) => e.node)[0]
      if (environment === undefined) return Effect.fail(new TransientError({ operation: "projectCreate", message: `project ${name} came without an environment` }))
      const project: OwnedProject = { id: answer.id, name, createdAt: new Date(answer.createdAt).getTime(), environmentId: environment.id, services: 0 }
      projects.set(name, project)
      return Effect.succeed(project)
    }

    /** A project of the pool's, made now on a token free to make one (`whenFree`: or not at all). */
    const makeProject = (name: string, whenFree = false) =>
      request<{ projectCreate: CreatedProjectAnswer }>("projectCreate", Ops.ProjectCreate, { input: projectInput(name) }, { creation: "project", whenFree }).pipe(
        Effect.flatMap(({ projectCreate }) => madeProject(name, projectCreate)),
        Effect.withSpan("RailwayCompute.makeProject", { attributes: { name } })
      )

    /**
     * After a create, the spares made up to the wanted number in the background: each once a token is free and
     * no create waits for one (a launch request may carry one first).
     */
    const topUpSpares = Effect.suspend(() => {
      if (toppingUp || spares.size >= spareTarget) return Effect.void
      toppingUp = true
      const one = Effect.suspend(() =>
        spares.size >= spareTarget ? Effect.void : Effect.map(makeProject(spareName(), true), (project) => void spares.set(project.id, project))
      )
      return one.pipe(
        Effect.retry({ schedule: Schedule.spaced(Duration.millis(500)), while: (e) => e._tag === "RateLimitedError", times: 1_200 }),
        Effect.repeat({ times: spareTarget - 1, until: () => spares.size >= spareTarget }),
        Effect.catchAll((error) => Effect.logWarning(`railway: no spare project this time (${error._tag}: ${error.message})`)),
        Effect.ensuring(Effect.sync(() => {
          toppingUp = false
        })),
        Effect.forkIn(scope),
        Effect.asVoid
      )
    })

    const homeOf = (project: OwnedProject): Home => ({ projectId: project.id, environmentId: project.environmentId })

    /**
     * Where each create goes: the shared environment; its own project (found by name, else made); or the first
     * sharded project with room, a new one (the lowest free number) when none has. Sharded creates count in
     * their project until `release`.
     */
    const place = (items: ReadonlyArray<CreateServiceRequest>): Effect.Effect<ReadonlyArray<Home>, ProviderError> => {
      switch (placement._tag) {
        case "shared":
          return Effect.succeed(items.map(() => sharedHome))
        case "project-per-instance":
          return Effect.forEach(items, (item) =>
            Effect.suspend(() => {
              const known = projects.get(item.name) ?? takeSpare()
              return Effect.map(known === undefined ? makeProject(item.name) : Effect.succeed(known), homeOf)
            }), { concurrency: "unbounded" })
        case "sharded":
          return allocation.withPermits(1)(Effect.gen(function*() {
            const chosen: Array<Home> = []
            for (const _ of items) {
              const shards = [...projects.values()].sort((a, b) => shardNumber(a.name, placement.projectPrefix)! - shardNumber(b.name, placement.projectPrefix)!)
              const roomy = shards.find((p) => p.services + (placedIn.get(p.id) ?? 0) < placement.servicesPerProject)
              const used = new Set(shards.map((p) => shardNumber(p.name, placement.projectPrefix)))
              const next = Array.from({ length: shards.length + 1 }, (_, i) => i + 1).find((n) => !used.has(n))!
              const project = roomy ?? (yield* makeProject(`${placement.projectPrefix}${next}`))
              placedIn.set(project.id, (placedIn.get(project.id) ?? 0) + 1)
              chosen.push(homeOf(project))
            }
            return chosen
          }))
      }
    }

    /** A create is over (made or failed): its project no longer holds a place for it. */
    const release = (homesTaken: ReadonlyArray<Home>) =>
      Effect.sync(() => {
        for (const home of homesTaken) {
          sparesInUse.delete(home.projectId)
          const left = (placedIn.get(home.projectId) ?? 1) - 1
          if (left <= 0) placedIn.delete(home.projectId)
          else placedIn.set(home.projectId, left)
        }
      })

    /** Runs `use` with the items placed, their names known as in flight (the janitor leaves their projects alone). */
    const placed = <A>(items: ReadonlyArray<CreateServiceRequest>, use: (homes: ReadonlyArray<Home>) => Effect.Effect<A, ProviderError>) =>
      Effect.acquireUseRelease(
        Effect.zipRight(Effect.sync(() => items.forEach((item) => creating.add(item.name))), place(items).pipe(Effect.either)),
        (placedHomes) => Either.match(placedHomes, { onLeft: Effect.fail, onRight: use }),
        (placedHomes) =>
          Effect.zipRight(
            Effect.sync(() => items.forEach((item) => creating.delete(item.name))),
            Either.match(placedHomes, { onLeft: () => Effect.void, onRight: release })
          )
      )

    /** Services with these names and nothing else: one request. Not retried (a retry would conflict). */
    const makeServices = (items: ReadonlyArray<CreateServiceRequest & { readonly home: Home }>) =>
      request<Record<string, { id: string }>>(
        "serviceCreateBatch",
        Ops.serviceCreateBatch(items.length),
        Object.fromEntries(items.map((item, i) => [`s${i}`, { projectId: item.home.projectId, environmentId: item.home.environmentId, name: item.name }])),
        { retry: false }
      ).pipe(Effect.map((answer) => items.map((_, i) => answer[`s${i}`]!.id)))

    /** A volume for each service that has not deployed yet, each on a token free to make one. */
    const makeVolumes = (targets: ReadonlyArray<{ readonly serviceId: string; readonly home: Home }>) =>
      volume === undefined || targets.length === 0
        ? Effect.succeed(new Map<string, string>())
        : Effect.forEach(targets, (t) =>
          request<{ volumeCreate: { id: string } }>("volumeCreate", Ops.VolumeCreate, {
            input: { projectId: t.home.projectId, environmentId: t.home.environmentId, serviceId: t.serviceId, mountPath: volume.mountPath }
          }, { creation: "volume" }).pipe(Effect.map(({ volumeCreate }) => [t.serviceId, volumeCreate.id] as const)), { concurrency: "unbounded" }).pipe(
            Effect.map((made) => new Map(made))
          )

    /**
     * Domains for the targets that lack one, names for their new volumes (and for the spare projects they took),
     * then image, variables (and the volumes' size) with a first deploy for each: one request, one environment
     * commit per environment. With fewer spares than wanted, a new one rides along when a token is free for it.
     */
    const launch = (targets: ReadonlyArray<LaunchTarget>) =>
      Effect.gen(function*() {
        const lacking = targets.filter((t) => t.url === null)
        const renamed = targets.filter((t) => t.newVolume && t.volumeId !== null)
        const respared = targets.flatMap((t) => {
          const project = [...projects.values()].find((p) => p.id === t.home.projectId)
          return project !== undefined && isSpareName(project.name) ? [{ name: t.name, project }] : []
        })
        const byEnvironment = [...targets.reduce((groups, t) => groups.set(t.home.environmentId, [...(groups.get(t.home.environmentId) ?? []), t]), new Map<string, ReadonlyArray<LaunchTarget>>())]
        const variables = {
          commitMessage: `warmpool: launch ${targets.map((t) => t.name).join(", ")}`,
          ...Object.fromEntries(byEnvironment.flatMap(([environmentId, group], i) => [
            [`e${i}`, environmentId],
            [`p${i}`, environmentPatch(group, { ids: group.flatMap((t) => (t.newVolume && t.volumeId !== null ? [t.volumeId] : [])), sizeMB: volume?.sizeMB ?? Option.none() })]
          ])),
          ...Object.fromEntries(lacking.map((t, i) => [`d${i}`, { environmentId: t.home.environmentId, serviceId: t.serviceId, targetPort: Number(t.env.PORT ?? 8080) }])),
          ...Object.fromEntries(renamed.flatMap((t, i) => [[`v${i}`, t.volumeId], [`vn${i}`, { name: t.name }]])),
          ...Object.fromEntries(respared.flatMap((r, i) => [[`n${i}`, r.project.id], [`nn${i}`, { name: r.name }]]))
        }
        const shape = { commits: byEnvironment.length, domains: lacking.length, volumes: renamed.length, renames: respared.length }
        const spare = spareName()
        type Answer = Record<string, { domain: string }> & { spare?: CreatedProjectAnswer }
        const alone = Effect.map(request<Answer>("serviceLaunchBatch", Ops.serviceLaunchBatch(shape), variables, { retry: false }), (data) => ({ data, carried: false }))
        // The next spare rides along only on a token free for a projectCreate right now. Railway refuses a request
        // whose creation the token may not make yet whole, before anything runs: then it goes again without it.
        const answer = yield* spares.size < spareTarget
          ? request<Answer>("serviceLaunchBatch", Ops.serviceLaunchBatch({ ...shape, spare: true }), { ...variables, spare: projectInput(spare) }, {
            creation: "project",
            whenFree: true
          }).pipe(Effect.map((data) => ({ data, carried: true })), Effect.catchTag("RateLimitedError", () => alone))
          : alone
        for (const { name, project } of respared) {
          projects.delete(project.name)
          projects.set(name, { ...project, name })
        }
        if (answer.carried && answer.data.spare !== undefined) {
          yield* madeProject(spare, answer.data.spare).pipe(
            Effect.tap((project) => Effect.sync(() => spares.set(project.id, project))),
            Effect.ignore // the listing adopts it
          )
        }
        const domains = new Map(lacking.map((t, i) => [t.serviceId, `https://${answer.data[`d${i}`]!.domain}`]))
        return targets.map((t): CreatedService => {
          homes.set(t.serviceId, { home: t.home, volumeId: t.volumeId })
          const handles = handlesOf(t.home, t.volumeId)
          return { serviceId: t.serviceId, url: t.url ?? domains.get(t.serviceId)!, deployStatus: "QUEUED", ...(handles === undefined ? {} : { handles }) }
        })
      })

    /** A project's count of services after creates that made them. */
    const counted = (created: ReadonlyArray<{ readonly home: Home }>) =>
      Effect.sync(() => {
        for (const { home } of created) {
          const project = [...projects.values()].find((p) => p.id === home.projectId)
          if (project !== undefined) project.services++
        }
      })

    /** The happy path: two requests for any number of creates (three with volumes), after their projects. */
    const createFresh = (items: ReadonlyArray<CreateServiceRequest>) =>
      placed(items, (placedHomes) =>
        Effect.gen(function*() {
          const withHomes = items.map((item, i) => ({ ...item, home: placedHomes[i]! }))
          const ids = yield* makeServices(withHomes)
          yield* counted(withHomes)
          const made = withHomes.map((item, i) => ({ ...item, serviceId: ids[i]! }))
          const volumes = yield* makeVolumes(made)
          return yield* launch(made.map((item) => ({ ...item, url: null, volumeId: volumes.get(item.serviceId) ?? null, newVolume: volumes.has(item.serviceId) })))
        }))

    /**
     * Completes creates whose outcome is unknown (a failed or timed-out batch, a create resumed after a crash):
     * one listing says which projects, services and volumes exist and which services have deployed; only what
     * is missing is made, and nothing deploys before its volume exists.
     */
    const complete = (items: ReadonlyArray<CreateServiceRequest>) =>
      Effect.gen(function*() {
        const listing = yield* listOwned(new Set(items.map((item) => item.name)))
        const listed = new Map(listing.services.map((s) => [s.info.name, s]))
        const missing = items.filter((item) => !listed.has(item.name))
        const made = new Map<string, { readonly serviceId: string; readonly home: Home }>()
        if (missing.length > 0) {
          yield* placed(missing, (placedHomes) =>
            Effect.gen(function*() {
              const withHomes = missing.map((item, i) => ({ ...item, home: placedHomes[i]! }))
              const ids = yield* makeServices(withHomes).pipe(
                // Made meanwhile, or the listing lagged behind: list again rather than guess.
                Effect.catchTag("ConflictError", (e) => new TransientError({ operation: e.operation, message: e.message }))
              )
              yield* counted(withHomes)
              withHomes.forEach((item, i) => made.set(item.name, { serviceId: ids[i]!, home: item.home }))
            }))
        }
        const results = new Map<string, CreatedService>()
        const targets: Array<Omit<LaunchTarget, "newVolume">> = []
        for (const item of items) {
          const found = listed.get(item.name)
          if (found !== undefined && found.info.deployStatus !== null && found.info.url !== null) {
            const handles = handlesOf(found.home, found.volumeId)
            results.set(item.name, { serviceId: found.info.serviceId, url: found.info.url, deployStatus: found.info.deployStatus, ...(handles === undefined ? {} : { handles }) })
          } else {
            const service = found === undefined ? made.get(item.name)! : { serviceId: found.info.serviceId, home: found.home }
            targets.push({ ...item, ...service, url: found?.info.url ?? null, volumeId: found?.volumeId ?? null })
          }
        }
        // Never a first deploy without its volume: the services that have none get one first.
        const volumes = yield* makeVolumes(targets.filter((t) => t.volumeId === null))
        // A volume made by a run that died before naming it is named now, so that it is known as the pool's.
        const volumeNames = new Map(listing.volumes.flatMap((v) => (v.serviceId === null ? [] : [[v.serviceId, v.name] as const])))
        const launched = targets.length === 0
          ? []
          : yield* launch(targets.map((t) => ({
            ...t,
            volumeId: t.volumeId ?? volumes.get(t.serviceId) ?? null,
            newVolume: volumes.has(t.serviceId) || (t.volumeId !== null && volumeNames.get(t.serviceId) !== t.name)
          })))
        launched.forEach((created, i) => results.set(targets[i]!.name, created))
        return items.map((item) => results.get(item.name)!)
      }).pipe(retryRemote())

    // Waiting for company is waiting for other fibers' I/O: wall time, whatever clock the program runs on.
    const wallClock = Clock.make()
    const createWindow = Duration.decode(options.createWindow ?? Duration.millis(100))
    const tightCreateWindow = Duration.decode(options.tightCreateWindow ?? Duration.seconds(8))
    const submitCreate = yield* makeGroupCommit(
      (items: ReadonlyArray<CreateServiceRequest>) =>
        createFresh(items).pipe(
          Effect.orElse(() => complete(items)),
          Effect.map((created) => created.map((c) => Either.right(c) as Either.Either<CreatedService, ProviderError>)),
          // The batch as a whole could not be completed: each on its own, so one bad create fails alone.
          Effect.orElse(() => Effect.forEach(items, (item) => Effect.either(Effect.map(complete([item]), (c) => c[0]!))))
        ),
      {
        maxBatch: options.createBatchMax ?? 50,
        // Creates of one pass arrive a few ms apart: wait that long for company.
        gather: Effect.sleep(createWindow).pipe(Effect.withClock(wallClock))
      }
    )

    const create = (input: CreateServiceRequest) =>
      submitCreate(input).pipe(
        Effect.flatMap((result) => result),
        Effect.tap(() => topUpSpares),
        Effect.withSpan("RailwayCompute.create", { attributes: { name: input.name } })
      )

    const ignoreGone = <E extends ProviderError>(effect: Effect.Effect<unknown, E>) =>
      effect.pipe(Effect.asVoid, Effect.catchIf((e): e is E => e._tag === "NotFoundError", () => Effect.void))

    /**
     * A project per instance: its project goes, and everything in it. Otherwise its volume, then the service;
     * an emptied sharded project is retired by the listing that finds it empty.
     */
    /** Where a service lives: known from a listing or a create; after a restart, one listing says. */
    const whereIs = (serviceId: string) =>
      Effect.suspend(() => {
        const known = homes.get(serviceId)
        return known !== undefined ? Effect.succeed(known) : Effect.map(listOwned(), () => homes.get(serviceId))
      })

    const destroy = (serviceId: string) =>
      Effect.gen(function*() {
        const known = yield* whereIs(serviceId)
        if (placement._tag === "project-per-instance" && known !== undefined) {
          yield* ignoreGone(request("projectDelete", Ops.ProjectDelete, { id: known.home.projectId }))
          for (const [name, project] of projects) if (project.id === known.home.projectId) projects.delete(name)
        } else {
          if (known?.volumeId != null) yield* ignoreGone(request("volumeDelete", Ops.VolumeDelete, { volumeId: known.volumeId }))
          yield* ignoreGone(request("serviceDelete", Ops.ServiceDelete, { id: serviceId, environmentId: known?.home.environmentId ?? context.environmentId }))
          const project = known === undefined ? undefined : [...projects.values()].find((p) => p.id === known.home.projectId)
          if (project !== undefined) project.services = Math.max(0, project.services - 1)
        }
        homes.delete(serviceId)
      }).pipe(Effect.withSpan("RailwayCompute.destroy"))

    // When the budget runs low, refills wait so that the creates of several claims share their two requests.
    const refillDelay = Effect.map(usage, (u) => (isTight(u) ? tightCreateWindow : Duration.zero))

    return {
      compute: ComputeProvider.of({ list: listAll, create, destroy, refillDelay }),
      context,
      usage,
      request,
      ownsEnvironment: (environmentId) => placement._tag !== "shared" || environmentId === context.environmentId,
      homeOf: (serviceId) =>
        placement._tag === "shared"
          ? Effect.succeed(sharedHome)
          : Effect.flatMap(whereIs(serviceId), (known) =>
            known === undefined
              ? new NotFoundError({ operation: "railway.homeOf", message: `service ${serviceId} is in none of the pool's projects` })
              : Effect.succeed(known.home))
    }
  })

/**
 * `ServiceUpgrader` over a connected platform: an existing service moves onto a new template with one environment
 * commit (image and variables together, one deploy); its own variables (per-instance secrets) stay. Its requests
 * share the platform's limiter and budget.
 */
export const upgraderOf = ({ homeOf, request }: Pick<RailwayPlatform, "request" | "homeOf">): ServiceUpgrader["Type"] =>
  ServiceUpgrader.of({
    redeploy: (serviceId, template) =>
      Effect.flatMap(homeOf(serviceId), ({ environmentId }) => request("environmentPatchCommit", Ops.serviceLaunchBatch({ commits: 1 }), {
        e0: environmentId,
        p0: environmentPatch([{ serviceId, ...template }]),
        commitMessage: `warmpool: upgrade ${serviceId} to ${template.image}`
      })).pipe(Effect.asVoid, Effect.withSpan("RailwayUpgrader.redeploy", { attributes: { serviceId } })),
    restart: (serviceId) =>
      Effect.flatMap(homeOf(serviceId), ({ environmentId }) =>
        request("serviceInstanceRedeploy", Ops.ServiceInstanceRedeploy, { environmentId, serviceId })).pipe(
          Effect.asVoid,
          Effect.withSpan("RailwayUpgrader.restart", { attributes: { serviceId } })
        )
  })

export const make = (options: RailwayOptions): Effect.Effect<ComputeProvider["Type"], ProviderError, Scope.Scope> =>
  Effect.map(makePlatform(options), (platform) => platform.compute)

/** The connected Railway provider: its context, budget and requests (webhook registration, dashboard). */
export class Railway extends Context.Tag("@warmpool/providers-railway/Railway")<Railway, RailwayPlatform>() {}

/** Reads a service's variables: what `db:enrich` recovers gateway tokens and inbox ids from. */
export class ServiceVariables extends Context.Tag("@warmpool/providers-railway/ServiceVariables")<
  ServiceVariables,
  { readonly read: (serviceId: string) => Effect.Effect<Readonly<Record<string, string>>, ProviderError> }
>() {}

const makeVariables = (options: RailwayOptions) =>
  Effect.map(makePlatform(options), ({ homeOf, request }) =>
    ServiceVariables.of({
      read: (serviceId) =>
        homeOf(serviceId).pipe(
          Effect.flatMap(({ environmentId, projectId }) =>
            request<{ variables: Record<string, string> }>("serviceVariables", Ops.ServiceVariables, { projectId, environmentId, serviceId })
          ),
          Effect.map((r) => r.variables)
        )
    }))

export const RailwayServiceVariables = {
  layer: (options: RailwayOptions): Layer.Layer<ServiceVariables, ProviderError> => Layer.scoped(ServiceVariables, makeVariables(options)),
  layerConfig: Layer.unwrapEffect(Effect.map(RailwayConfig, (options) => Layer.scoped(ServiceVariables, makeVariables(options))))
}

const platformLayer = (options: RailwayOptions): Layer.Layer<ComputeProvider | ServiceUpgrader | Railway, ProviderError> =>
  Layer.scopedContext(Effect.map(makePlatform(options), (platform) =>
    Context.make(Railway, platform).pipe(Context.add(ComputeProvider, platform.compute), Context.add(ServiceUpgrader, upgraderOf(platform)))))

export const RailwayCompute = {
  /** From options (library users, tests). Fails at build when the token or the environment is wrong. */
  layer: platformLayer,
  /** From RAILWAY_* environment variables. */
  layerConfig: Layer.unwrapEffect(Effect.map(RailwayConfig, platformLayer))
}

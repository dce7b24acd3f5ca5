/**
 * A Railway API emulator: a real GraphQL server on loopback that executes, with graphql-js, the operations
 * the provider sends, over a schema that mirrors Railway's names and types. Deployments progress QUEUED →
 * BUILDING → DEPLOYING → SUCCESS over time, and each records the variables, domain and image it started with.
 * A service created with a source deploys at once (as on Railway); `environmentPatchCommit` applies images and
 * variables to many services and deploys each once. Notification rules deliver deployment events to their
 * webhooks as Railway does (JSON POSTs, unsigned). Rate-limit headers count down per request.
 * Faults: the harness's (429 with Retry-After, HTML pages, 5xx, slow answers) plus tiny pages, a failing page
 * and lost webhooks.
 */
import { startHttpEmulator } from "@warmpool/reconciler/testing"
import { Duration, Effect, Redacted } from "effect"
import { buildSchema, graphql, GraphQLError } from "graphql"
import { randomUUID } from "node:crypto"
import type { RailwayOptions } from "../config.js"
import { type InstanceTls, startInstances } from "./instances.js"

const schema = buildSchema(/* GraphQL */ `
  scalar DateTime
  scalar EnvironmentVariables
  scalar EnvironmentConfig
  scalar NotificationChannelConfig
  enum NotificationSeverity { CRITICAL INFO NOTICE WARNING }
  type NotificationChannel { id: ID! config: NotificationChannelConfig! workspaceId: String! }
  type NotificationRule { id: ID! workspaceId: String! projectId: String eventTypes: [String!]! channels: [NotificationChannel!]! }
  input CreateNotificationRuleInput {
    channelConfigs: [NotificationChannelConfig!]! ephemeralEnvironments: Boolean eventTypes: [String!]! projectId: String
    severities: [NotificationSeverity!] workspaceId: String!
  }
  input UpdateNotificationRuleInput {
    channelConfigs: [NotificationChannelConfig!] ephemeralEnvironments: Boolean eventTypes: [String!] severities: [NotificationSeverity!]
  }
  enum DeploymentStatus { BUILDING CRASHED DEPLOYING FAILED INITIALIZING NEEDS_APPROVAL QUEUED REMOVED REMOVING SKIPPED SLEEPING SUCCESS WAITING }
  type PageInfo { endCursor: String hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String }
  type ServiceSource { image: String repo: String }
  type ServiceDomain { id: ID! domain: String! targetPort: Int }
  type AllDomains { serviceDomains: [ServiceDomain!]! }
  type Deployment { id: ID! status: DeploymentStatus! createdAt: DateTime! staticUrl: String url: String }
  type ServiceInstance {
    id: ID! serviceId: String! serviceName: String! environmentId: String! createdAt: DateTime!
    source: ServiceSource latestDeployment: Deployment domains: AllDomains!
  }
  type EnvironmentServiceInstancesConnectionEdge { cursor: String! node: ServiceInstance! }
  type EnvironmentServiceInstancesConnection { edges: [EnvironmentServiceInstancesConnectionEdge!]! pageInfo: PageInfo! }
  type Environment {
    id: ID! name: String! projectId: String!
    serviceInstances(after: String, before: String, first: Int, last: Int): EnvironmentServiceInstancesConnection!
    volumeInstances(after: String, before: String, first: Int, last: Int): EnvironmentVolumeInstancesConnection!
  }
  type ProjectEnvironmentsConnectionEdge { cursor: String! node: Environment! }
  type ProjectEnvironmentsConnection { edges: [ProjectEnvironmentsConnectionEdge!]! pageInfo: PageInfo! }
  type Project {
    id: ID! name: String! createdAt: DateTime! workspaceId: String
    environments(after: String, before: String, first: Int, last: Int): ProjectEnvironmentsConnection!
  }
  type WorkspaceProjectsConnectionEdge { cursor: String! node: Project! }
  type WorkspaceProjectsConnection { edges: [WorkspaceProjectsConnectionEdge!]! pageInfo: PageInfo! }
  type Workspace { id: ID! name: String! projects(after: String, before: String, first: Int, last: Int): WorkspaceProjectsConnection! }
  input ProjectCreateInput { defaultEnvironmentName: String description: String isPublic: Boolean name: String workspaceId: String }
  input ProjectUpdateInput { description: String isPublic: Boolean name: String }
  type Volume { id: ID! name: String! projectId: String! createdAt: DateTime! }
  input VolumeCreateInput { environmentId: String mountPath: String! projectId: String! region: String serviceId: String }
  input VolumeUpdateInput { name: String }
  type VolumeInstance { id: ID! volumeId: String! serviceId: String environmentId: String! mountPath: String! sizeMB: Int! createdAt: DateTime! volume: Volume! }
  type EnvironmentVolumeInstancesConnectionEdge { cursor: String! node: VolumeInstance! }
  type EnvironmentVolumeInstancesConnection { edges: [EnvironmentVolumeInstancesConnectionEdge!]! pageInfo: PageInfo! }
  type ProjectToken { projectId: String! environmentId: String! }
  type Service { id: ID! name: String! createdAt: DateTime! projectId: String! }
  input ServiceSourceInput { image: String repo: String }
  input ServiceCreateInput {
    projectId: String! environmentId: String name: String source: ServiceSourceInput variables: EnvironmentVariables
    branch: String icon: String templateId: String templateServiceId: String
  }
  input ServiceDomainCreateInput { environmentId: String! serviceId: String! targetPort: Int }
  type Query {
    environment(id: String!, projectId: String): Environment!
    project(id: String!): Project!
    projectToken: ProjectToken!
    serviceInstance(environmentId: String!, serviceId: String!): ServiceInstance!
    variables(environmentId: String!, projectId: String!, serviceId: String, unrendered: Boolean): EnvironmentVariables!
    notificationRules(projectId: String, workspaceId: String!): [NotificationRule!]!
    workspace(workspaceId: String!): Workspace!
  }
  type Mutation {
    serviceCreate(input: ServiceCreateInput!): Service!
    serviceDomainCreate(input: ServiceDomainCreateInput!): ServiceDomain!
    environmentPatchCommit(commitMessage: String, environmentId: String!, patch: EnvironmentConfig): String!
    serviceDelete(environmentId: String, id: String!): Boolean!
    serviceInstanceRedeploy(environmentId: String!, serviceId: String!): Boolean!
    notificationRuleCreate(input: CreateNotificationRuleInput!): NotificationRule!
    notificationRuleUpdate(id: String!, input: UpdateNotificationRuleInput!): NotificationRule!
    projectCreate(input: ProjectCreateInput!): Project!
    projectUpdate(id: String!, input: ProjectUpdateInput!): Project!
    projectDelete(id: String!): Boolean!
    volumeCreate(input: VolumeCreateInput!): Volume!
    volumeUpdate(input: VolumeUpdateInput!, volumeId: String!): Volume!
    volumeDelete(volumeId: String!): Boolean!
  }
`)

/** The version an instance's runtime reports: its image's tag (`…/agent:1.4.0` → `1.4.0`); none for a digest or no tag. */
const versionOf = (image: string | null): string | null => {
  const tag = image === null || image.includes("@") ? undefined : /:([^/:]+)$/.exec(image)?.[1]
  return tag ?? null
}

/** What a deployment started with: the seed lost instances whose first deploy lacked these. */
export interface EmulatedDeployment {
  readonly id: string
  readonly createdAt: number
  readonly image: string | null
  readonly variables: Readonly<Record<string, string>>
  readonly domain: string | null
  /** The volume mounted when it started (its mount path), if any. */
  readonly volume: string | null
  /** Set by a test: CRASHED, SLEEPING, … overrides the progression. */
  override?: string
}

export interface EmulatedService {
  readonly id: string
  readonly name: string
  readonly projectId: string
  readonly createdAt: number
  image: string | null
  variables: Record<string, string>
  domain: string | null
  readonly deployments: Array<EmulatedDeployment>
}

export interface EmulatedProject {
  readonly id: string
  readonly name: string
  readonly workspaceId: string
  readonly createdAt: number
  readonly environments: ReadonlyArray<{ readonly id: string; readonly name: string }>
}

export interface EmulatedVolume {
  readonly id: string
  name: string
  readonly projectId: string
  readonly environmentId: string
  /** The service it is attached to; null once that service is gone (the volume stays, as on Railway). */
  serviceId: string | null
  readonly mountPath: string
  sizeMB: number
  readonly createdAt: number
}

export interface RailwayEmulatorOptions {
  readonly accountToken?: string
  /** More account/workspace tokens the emulator accepts (RAILWAY_API_TOKENS). */
  readonly moreAccountTokens?: ReadonlyArray<string>
  readonly projectToken?: string
  readonly projectId?: string
  readonly projectName?: string
  readonly environments?: ReadonlyArray<{ readonly id: string; readonly name: string }>
  /** QUEUED → SUCCESS. Default 300 ms. */
  readonly deployMs?: number
  /** Largest page `serviceInstances` serves. Default 100. */
  readonly maxPageSize?: number
  readonly workspaceId?: string
  /** `x-ratelimit-limit` (Railway's hourly limit). Default 1,000 (Hobby). */
  readonly hourlyLimit?: number
  /** Requests already spent this hour (by other tools): `x-ratelimit-remaining` starts lower. Default 0. */
  readonly spent?: number
  /** `serviceCreate` makes the service at once but answers this much later (a create in flight). Default 0. */
  readonly serviceCreateDelayMs?: number
  /** `projectCreate` makes the project at once but answers this much later. Default 0. */
  readonly projectCreateDelayMs?: number
  /** Serve the services' instances over HTTPS on loopback (see `instances.ts`); domains then point there. */
  readonly instances?: InstanceTls
  /** Services one project may hold (Railway caps them per project). Default 100. */
  readonly maxServicesPerProject?: number
  /** One `projectCreate` per token per this long, as Railway allows ("Only one project can be created per user…"). Default 30 s. */
  readonly projectCreateEveryMs?: number
  /** One `volumeCreate` per token per this long ("You are creating volumes too quickly"). Default 30 s. */
  readonly volumeCreateEveryMs?: number
  /** A new volume's size (Railway's plan default). Default 5,000 MB (Hobby). */
  readonly volumeSizeMB?: number
}

/** A deployment event as Railway's webhooks deliver it. */
export interface EmulatedWebhookEvent {
  readonly type: string
  readonly resource: {
    readonly workspace: { readonly id: string }
    readonly project: { readonly id: string }
    readonly environment: { readonly id: string; readonly name: string }
    readonly service: { readonly id: string; readonly name: string }
    readonly deployment: { readonly id: string }
  }
  readonly details: { readonly status: string }
  readonly timestamp: string
}

/** The webhook event a deployment status stands for. */
const eventOfStatus: Readonly<Record<string, string>> = {
  SUCCESS: "Deployment.deployed",
  CRASHED: "Deployment.crashed",
  FAILED: "Deployment.failed",
  SLEEPING: "Deployment.slept"
}

interface EmulatedRule {
  readonly id: string
  readonly workspaceId: string
  readonly projectId: string | null
  eventTypes: ReadonlyArray<string>
  channels: ReadonlyArray<{ readonly id: string; readonly config: { readonly type?: string; readonly url?: string } }>
}

/** Railway's words when a token creates projects or volumes faster than it allows. */
export const PROJECT_CREATE_LIMITED = "Only one project can be created per user every 30 seconds. Please try again later."
export const VOLUME_CREATE_LIMITED = "You are creating volumes too quickly. Please try again later."

const statusAt = (deployment: EmulatedDeployment, now: number, deployMs: number) => {
  if (deployment.override !== undefined) return deployment.override
  const progress = deployMs === 0 ? 1 : (now - deployment.createdAt) / deployMs
  return progress >= 1 ? "SUCCESS" : progress >= 0.66 ? "DEPLOYING" : progress >= 0.33 ? "BUILDING" : "QUEUED"
}

/** A Relay page of `all` after the opaque cursor `after` (an index), as Railway's connections page. */
const pageOf = <A, B>(all: ReadonlyArray<A>, first: number | undefined, after: string | undefined | null, maxPageSize: number, view: (a: A) => B) => {
  const size = Math.min(first ?? maxPageSize, maxPageSize)
  const start = after === undefined || after === null ? 0 : Number(Buffer.from(after, "base64url").toString()) + 1
  const page = all.slice(start, start + size)
  const cursor = (i: number) => Buffer.from(String(start + i)).toString("base64url")
  return {
    start,
    size,
    connection: {
      edges: page.map((a, i) => ({ cursor: cursor(i), node: view(a) })),
      pageInfo: {
        hasNextPage: start + size < all.length,
        hasPreviousPage: start > 0,
        startCursor: page.length > 0 ? cursor(0) : null,
        endCursor: page.length > 0 ? cursor(page.length - 1) : null
      }
    }
  }
}

export const startRailwayEmulator = (options: RailwayEmulatorOptions = {}) =>
  Effect.gen(function*() {
    const accountToken = options.accountToken ?? "account-token"
    const projectToken = options.projectToken ?? "project-token"
    const projectId = options.projectId ?? "project-1"
    const environments = options.environments ?? [{ id: "env-production", name: "production" }, { id: "env-scaling", name: "Scaling" }]
    const workspaceId = options.workspaceId ?? "workspace-1"
    const state = {
      deployMs: options.deployMs ?? 300,
      maxPageSize: options.maxPageSize ?? 100,
      /** A page index (0-based) whose request fails with an internal error. */
      failPage: undefined as number | undefined,
      projects: new Map<string, EmulatedProject>([[projectId, {
        id: projectId,
        name: options.projectName ?? "convos-agents",
        workspaceId,
        createdAt: Date.now(),
        environments
      }]]),
      services: new Map<string, EmulatedService>(),
      /** Late creates that made a second service of a name already taken. */
      twinsLanded: 0,
      volumes: new Map<string, EmulatedVolume>(),
      operations: {} as Record<string, number>,
      remaining: (options.hourlyLimit ?? 1000) - (options.spent ?? 0),
      rules: [] as Array<EmulatedRule>,
      /** Webhook deliveries to drop (a lost webhook). */
      dropWebhooks: 0,
      delivered: [] as Array<{ readonly url: string; readonly event: EmulatedWebhookEvent; readonly dropped: boolean }>,
      accountTokens: new Set([accountToken, ...(options.moreAccountTokens ?? [])]),
      revoked: new Set<string>(),
      /** When each token may next create a project / a volume (epoch ms). */
      nextProjectCreate: new Map<string, number>(),
      nextVolumeCreate: new Map<string, number>(),
      /** Every accepted projectCreate / volumeCreate: which token, when. */
      creations: [] as Array<{ readonly kind: "project" | "volume"; readonly token: string; readonly at: number }>
    }
    const limits = {
      maxServicesPerProject: options.maxServicesPerProject ?? 100,
      projectCreateEveryMs: options.projectCreateEveryMs ?? 30_000,
      volumeCreateEveryMs: options.volumeCreateEveryMs ?? 30_000,
      volumeSizeMB: options.volumeSizeMB ?? 5_000
    }
    const timers = new Set<ReturnType<typeof setTimeout>>()
    yield* Effect.addFinalizer(() => Effect.sync(() => timers.forEach(clearTimeout)))
    const hungRuntimePaths = new Set<string>()
    const delays = { serviceCreateMs: options.serviceCreateDelayMs ?? 0, projectCreateMs: options.projectCreateDelayMs ?? 0, provisionMs: 0, serviceCreateLandsMs: 0 }
    const instances = options.instances === undefined ? undefined : yield* startInstances(options.instances, (name) => {
      const service = [...state.services.values()].find((s) => s.name === name)
      const latest = service?.deployments.at(-1)
      return latest === undefined ? undefined : {
        running: statusAt(latest, Date.now(), state.deployMs) === "SUCCESS",
        variables: latest.variables,
        version: versionOf(latest.image)
      }
    }, { provisionDelayMs: () => delays.provisionMs, hangs: (path) => hungRuntimePaths.has(path) })
    /** A service's public domain: Railway's shape, or the loopback instance server when it runs. */
    const domainOf = (name: string) => instances === undefined ? `${name}-production.up.railway.app` : `${instances.host}/${name}`

    type Caller = { readonly kind: "account" | "project" | "none"; readonly token: string | null; readonly landsLate?: boolean }
    const authorize = (caller: Caller) => {
      if (caller.kind === "none") throw new GraphQLError("Not Authorized")
    }
    const environmentOf = (id: string) => {
      for (const project of state.projects.values()) {
        const found = project.environments.find((e) => e.id === id)
        if (found !== undefined) return { ...found, projectId: project.id }
      }
      throw new GraphQLError(`Environment ${id} not found`)
    }
    const projectOf = (id: string) => {
      const found = state.projects.get(id)
      if (found === undefined) throw new GraphQLError(`Project ${id} not found`)
      return found
    }
    const serviceOf = (id: string) => {
      const found = state.services.get(id)
      if (found === undefined) throw new GraphQLError(`Service ${id} not found`)
      return found
    }
    const volumeOf = (id: string) => {
      const found = state.volumes.get(id)
      if (found === undefined) throw new GraphQLError(`Volume ${id} not found`)
      return found
    }
    const attachedVolume = (serviceId: string) => [...state.volumes.values()].find((v) => v.serviceId === serviceId)
    const instanceView = (service: EmulatedService, environmentId: string) => {
      const latest = service.deployments.at(-1)
      return {
        id: `${service.id}:${environmentId}`,
        serviceId: service.id,
        serviceName: service.name,
        environmentId,
        createdAt: new Date(service.createdAt).toISOString(),
        source: service.image === null ? null : { image: service.image, repo: null },
        latestDeployment: latest === undefined
          ? null
          : { id: latest.id, status: statusAt(latest, Date.now(), state.deployMs), createdAt: new Date(latest.createdAt).toISOString() },
        domains: { serviceDomains: service.domain === null ? [] : [{ id: `${service.id}-domain`, domain: service.domain, targetPort: 8080 }] }
      }
    }
    const volumeView = (volume: EmulatedVolume) => ({ id: volume.id, name: volume.name, projectId: volume.projectId, createdAt: new Date(volume.createdAt).toISOString() })
    const environmentView = (environment: { readonly id: string; readonly name: string; readonly projectId: string }) => ({
      ...environment,
      serviceInstances: ({ after, first }: { first?: number; after?: string }) => {
        const all = [...state.services.values()]
          .filter((s) => s.projectId === environment.projectId)
          .sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id))
        const { connection, size, start } = pageOf(all, first, after, state.maxPageSize, (s) => instanceView(s, environment.id))
        if (state.failPage !== undefined && Math.floor(start / size) === state.failPage) throw new GraphQLError("Internal server error")
        return connection
      },
      volumeInstances: ({ after, first }: { first?: number; after?: string }) => {
        const all = [...state.volumes.values()].filter((v) => v.environmentId === environment.id).sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id))
        return pageOf(all, first, after, state.maxPageSize, (v) => ({
          id: `${v.id}:${v.environmentId}`,
          volumeId: v.id,
          serviceId: v.serviceId,
          environmentId: v.environmentId,
          mountPath: v.mountPath,
          sizeMB: v.sizeMB,
          createdAt: new Date(v.createdAt).toISOString(),
          volume: volumeView(v)
        })).connection
      }
    })
    const projectView = (project: EmulatedProject) => ({
      id: project.id,
      name: project.name,
      workspaceId: project.workspaceId,
      createdAt: new Date(project.createdAt).toISOString(),
      environments: ({ after, first }: { first?: number; after?: string }) =>
        pageOf(project.environments, first, after, state.maxPageSize, (e) => environmentView({ ...e, projectId: project.id })).connection
    })

    const rootValue = {
      projectToken: (_: unknown, caller: Caller) => {
        if (caller.kind !== "project") throw new GraphQLError("Not Authorized")
        return { projectId, environmentId: environments[0]!.id }
      },
      project: ({ id }: { id: string }, caller: Caller) => {
        authorize(caller)
        return projectView(projectOf(id))
      },
      workspace: ({ workspaceId: asked }: { workspaceId: string }, caller: Caller) => {
        authorize(caller)
        if (caller.kind !== "account" || asked !== workspaceId) throw new GraphQLError(`Workspace ${asked} not found`)
        return {
          id: workspaceId,
          name: "Convos",
          projects: ({ after, first }: { first?: number; after?: string }) => {
            const all = [...state.projects.values()].filter((p) => p.workspaceId === workspaceId).sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id))
            return pageOf(all, first, after, state.maxPageSize, projectView).connection
          }
        }
      },
      environment: ({ id }: { id: string }, caller: Caller) => {
        authorize(caller)
        return environmentView(environmentOf(id))
      },
      serviceInstance: ({ environmentId, serviceId }: { environmentId: string; serviceId: string }, caller: Caller) => {
        authorize(caller)
        environmentOf(environmentId)
        return instanceView(serviceOf(serviceId), environmentId)
      },
      variables: ({ serviceId }: { serviceId?: string }, caller: Caller) => {
        authorize(caller)
        return serviceId === undefined ? {} : serviceOf(serviceId).variables
      },
      projectCreate: ({ input }: { input: { name?: string; workspaceId?: string; defaultEnvironmentName?: string } }, caller: Caller) => {
        authorize(caller)
        if (caller.kind !== "account") throw new GraphQLError("Not Authorized")
        if (input.workspaceId !== undefined && input.workspaceId !== workspaceId) throw new GraphQLError(`Workspace ${input.workspaceId} not found`)
        const id = randomUUID()
        const project: EmulatedProject = {
          id,
          name: input.name ?? `project-${state.projects.size}`,
          workspaceId,
          createdAt: Date.now(),
          environments: [{ id: `env-${randomUUID()}`, name: input.defaultEnvironmentName ?? "production" }]
        }
        state.projects.set(id, project)
        return projectView(project)
      },
      projectUpdate: ({ id, input }: { id: string; input: { name?: string } }, caller: Caller) => {
        authorize(caller)
        const project = { ...projectOf(id), ...(input.name === undefined ? {} : { name: input.name }) }
        state.projects.set(id, project)
        return projectView(project)
      },
      projectDelete: ({ id }: { id: string }, caller: Caller) => {
        authorize(caller)
        projectOf(id)
        // As on Railway: a project's services and volumes go with it.
        for (const service of state.services.values()) if (service.projectId === id) state.services.delete(service.id)
        for (const volume of state.volumes.values()) if (volume.projectId === id) state.volumes.delete(volume.id)
        state.projects.delete(id)
        return true
      },
      volumeCreate: ({ input }: { input: { projectId: string; environmentId?: string; serviceId?: string; mountPath: string } }, caller: Caller) => {
        authorize(caller)
        const project = projectOf(input.projectId)
        const environmentId = input.environmentId ?? project.environments[0]!.id
        if (environmentOf(environmentId).projectId !== project.id) throw new GraphQLError(`Environment ${environmentId} not found`)
        if (input.serviceId !== undefined) {
          if (serviceOf(input.serviceId).projectId !== project.id) throw new GraphQLError(`Service ${input.serviceId} not found`)
          if (attachedVolume(input.serviceId) !== undefined) throw new GraphQLError("Service already has a volume attached")
        }
        if (!input.mountPath.startsWith("/")) throw new GraphQLError("mountPath must be an absolute path")
        const volume: EmulatedVolume = {
          id: randomUUID(),
          name: `volume-${state.volumes.size}`,
          projectId: project.id,
          environmentId,
          serviceId: input.serviceId ?? null,
          mountPath: input.mountPath,
          sizeMB: limits.volumeSizeMB,
          createdAt: Date.now()
        }
        state.volumes.set(volume.id, volume)
        return volumeView(volume)
      },
      volumeUpdate: ({ input, volumeId }: { input: { name?: string }; volumeId: string }, caller: Caller) => {
        authorize(caller)
        const volume = volumeOf(volumeId)
        if (input.name !== undefined) volume.name = input.name
        return volumeView(volume)
      },
      volumeDelete: ({ volumeId }: { volumeId: string }, caller: Caller) => {
        authorize(caller)
        volumeOf(volumeId)
        state.volumes.delete(volumeId)
        return true
      },
      serviceCreate: ({ input }: { input: { projectId: string; environmentId?: string; name?: string; source?: { image?: string }; variables?: Record<string, string> } }, caller: Caller) => {
        authorize(caller)
        const project = projectOf(input.projectId)
        const siblings = [...state.services.values()].filter((s) => s.projectId === project.id)
        const name = input.name ?? `service-${siblings.length}`
        // A create that lands late was accepted before the name was taken: Railway makes a second service of it.
        if (siblings.some((s) => s.name === name)) {
          if (!caller.landsLate) throw new GraphQLError(`Service with name ${name} already exists`)
          state.twinsLanded += 1
        }
        if (siblings.length >= limits.maxServicesPerProject) {
          throw new GraphQLError(`Project has reached the maximum number of services (${limits.maxServicesPerProject})`)
        }
        const service: EmulatedService = {
          id: randomUUID(),
          name,
          projectId: project.id,
          createdAt: Date.now(),
          image: input.source?.image ?? null,
          variables: { ...input.variables },
          domain: null,
          deployments: []
        }
        state.services.set(service.id, service)
        // As on Railway: a service made with a source deploys at once, with what it has by then.
        if (service.image !== null) deploy(service)
        return { id: service.id, name, createdAt: new Date(service.createdAt).toISOString(), projectId: project.id }
      },
      serviceDomainCreate: ({ input }: { input: { serviceId: string; environmentId: string } }, caller: Caller) => {
        authorize(caller)
        environmentOf(input.environmentId)
        const service = serviceOf(input.serviceId)
        service.domain = domainOf(service.name)
        return { id: `${service.id}-domain`, domain: service.domain, targetPort: 8080 }
      },
      environmentPatchCommit: (
        { environmentId, patch }: {
          environmentId: string
          patch?: {
            services?: Record<string, { source?: { image?: string }; variables?: Record<string, { value?: string }> }>
            volumes?: Record<string, { sizeMB?: number }>
          }
        },
        caller: Caller
      ) => {
        authorize(caller)
        const environment = environmentOf(environmentId)
        const changes = Object.entries(patch?.services ?? {})
        // Atomic: every service and volume is checked before any changes.
        const services = changes.map(([id]) => serviceOf(id))
        for (const service of services) if (service.projectId !== environment.projectId) throw new GraphQLError(`Service ${service.id} not found in environment ${environmentId}`)
        const volumeChanges = Object.entries(patch?.volumes ?? {}).map(([id, change]) => [volumeOf(id), change] as const)
        for (const [, change] of volumeChanges) {
          if (change.sizeMB !== undefined && (!Number.isInteger(change.sizeMB) || change.sizeMB < 1)) throw new GraphQLError("volumes.sizeMB must be a whole number ≥ 1")
        }
        changes.forEach(([, change], i) => {
          const service = services[i]!
          if (change.source?.image !== undefined) service.image = change.source.image
          for (const [name, variable] of Object.entries(change.variables ?? {})) {
            if (typeof variable?.value !== "string") throw new GraphQLError(`variables.${name}: expected {value: string}`)
            service.variables[name] = variable.value
          }
        })
        for (const [volume, change] of volumeChanges) if (change.sizeMB !== undefined) volume.sizeMB = change.sizeMB
        for (const service of services) if (service.image !== null) deploy(service)
        return randomUUID()
      },
      serviceInstanceRedeploy: ({ environmentId, serviceId }: { environmentId: string; serviceId: string }, caller: Caller) => {
        authorize(caller)
        environmentOf(environmentId)
        const service = serviceOf(serviceId)
        if (service.image === null) throw new GraphQLError("Service has no deployment to redeploy")
        deploy(service)
        return true
      },
      notificationRules: ({ workspaceId: asked }: { workspaceId: string }, caller: Caller) => {
        authorize(caller)
        return state.rules.filter((r) => r.workspaceId === asked)
      },
      notificationRuleCreate: ({ input }: { input: { workspaceId: string; projectId?: string; eventTypes: ReadonlyArray<string>; channelConfigs: ReadonlyArray<{ type?: string; url?: string }> } }, caller: Caller) => {
        authorize(caller)
        if (input.workspaceId !== workspaceId) throw new GraphQLError(`Workspace ${input.workspaceId} not found`)
        const rule: EmulatedRule = {
          id: randomUUID(),
          workspaceId: input.workspaceId,
          projectId: input.projectId ?? null,
          eventTypes: [...input.eventTypes],
          channels: input.channelConfigs.map((config) => ({ id: randomUUID(), config, workspaceId }))
        }
        state.rules.push(rule)
        return rule
      },
      notificationRuleUpdate: ({ id, input }: { id: string; input: { eventTypes?: ReadonlyArray<string>; channelConfigs?: ReadonlyArray<{ type?: string; url?: string }> } }, caller: Caller) => {
        authorize(caller)
        const rule = state.rules.find((r) => r.id === id)
        if (rule === undefined) throw new GraphQLError(`Notification rule ${id} not found`)
        if (input.eventTypes !== undefined) rule.eventTypes = [...input.eventTypes]
        if (input.channelConfigs !== undefined) rule.channels = input.channelConfigs.map((config) => ({ id: randomUUID(), config, workspaceId }))
        return rule
      },
      serviceDelete: ({ id }: { id: string }, caller: Caller) => {
        authorize(caller)
        serviceOf(id)
        state.services.delete(id)
        // As on Railway: the volume stays, detached, until deleted itself.
        const volume = attachedVolume(id)
        if (volume !== undefined) volume.serviceId = null
        return true
      }
    }

    const deploy = (service: EmulatedService) => {
      const deployment: EmulatedDeployment = {
        id: randomUUID(),
        createdAt: Date.now(),
        image: service.image,
        variables: { ...service.variables },
        domain: service.domain,
        volume: attachedVolume(service.id)?.mountPath ?? null
      }
      service.deployments.push(deployment)
      const timer = setTimeout(() => {
        timers.delete(timer)
        if (service.deployments.at(-1) === deployment && deployment.override === undefined && state.services.has(service.id)) {
          notify(service, deployment, "SUCCESS")
        }
      }, state.deployMs)
      timers.add(timer)
      return deployment
    }

    /** Delivers a deployment event to every webhook of a rule that wants it, as Railway does: unsigned JSON POSTs. */
    const notify = (service: EmulatedService, deployment: EmulatedDeployment, status: string) => {
      const type = eventOfStatus[status]
      if (type === undefined) return
      const environment = state.projects.get(service.projectId)?.environments[0] ?? environments[0]!
      const event: EmulatedWebhookEvent = {
        type,
        resource: {
          workspace: { id: workspaceId },
          project: { id: service.projectId },
          environment: { id: environment.id, name: environment.name },
          service: { id: service.id, name: service.name },
          deployment: { id: deployment.id }
        },
        details: { status },
        timestamp: new Date().toISOString()
      }
      // A rule with a project hears that project only; one without hears the whole workspace.
      const rules = state.rules.filter((r) => r.eventTypes.includes(type) && (r.projectId === null || r.projectId === service.projectId))
      for (const rule of rules) {
        for (const { config } of rule.channels) {
          if (typeof config.url !== "string") continue
          const dropped = state.dropWebhooks > 0
          if (dropped) state.dropWebhooks--
          state.delivered.push({ url: config.url, event, dropped })
          if (!dropped) {
            fetch(config.url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(event) }).catch(() => undefined)
          }
        }
      }
    }

    const rateLimitHeaders = () => ({
      "x-ratelimit-limit": String(options.hourlyLimit ?? 1000),
      "x-ratelimit-remaining": String(state.remaining),
      "x-ratelimit-reset": String(Math.floor(Date.now() / 1000) + 3600)
    })

    /**
     * Railway's per-token limits on creating projects and volumes: a request carrying more creates than the
     * token may make now is refused whole, 429 with Retry-After, before anything runs.
     */
    const creationLimit = (query: string, token: string) => {
      const now = Date.now()
      const checks = [
        { kind: "project" as const, count: (query.match(/\bprojectCreate\s*\(/g) ?? []).length, next: state.nextProjectCreate, every: limits.projectCreateEveryMs, message: PROJECT_CREATE_LIMITED },
        { kind: "volume" as const, count: (query.match(/\bvolumeCreate\s*\(/g) ?? []).length, next: state.nextVolumeCreate, every: limits.volumeCreateEveryMs, message: VOLUME_CREATE_LIMITED }
      ]
      for (const check of checks) {
        if (check.count === 0) continue
        const at = check.next.get(token) ?? 0
        if (at > now || check.count > 1) return { message: check.message, retryAfterMs: Math.max(at - now, check.every) }
      }
      for (const check of checks) {
        if (check.count === 0) continue
        check.next.set(token, now + check.every)
        state.creations.push({ kind: check.kind, token, at: now })
      }
      return undefined
    }

    const emulator = yield* startHttpEmulator(async (request) => {
      const body = request.body as { query?: string; variables?: Record<string, unknown>; operationName?: string } | undefined
      if (request.method !== "POST" || request.path !== "/graphql/v2" || typeof body?.query !== "string") {
        return { status: 404, body: { errors: [{ message: "Not found" }] } }
      }
      const name = body.operationName ?? /(?:query|mutation)\s+(\w+)/.exec(body.query)?.[1] ?? "anonymous"
      state.operations[name] = (state.operations[name] ?? 0) + 1
      const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? "")?.[1]
      const header = request.headers["project-access-token"]
      const projectHeader = typeof header === "string" ? header : undefined
      const presented = projectHeader ?? bearer
      if (presented !== undefined && state.revoked.has(presented)) {
        return { status: 401, body: { errors: [{ message: "Not Authorized" }] }, headers: rateLimitHeaders() }
      }
      const caller: Caller = projectHeader === projectToken
        ? { kind: "project", token: projectHeader }
        : bearer !== undefined && state.accountTokens.has(bearer)
        ? { kind: "account", token: bearer }
        : { kind: "none", token: null }
      if (caller.token !== null) {
        const limited = creationLimit(body.query, caller.token)
        if (limited !== undefined) {
          const retryAfter = Math.ceil(limited.retryAfterMs / 1000)
          return { status: 429, body: { errors: [{ message: limited.message }] }, headers: { ...rateLimitHeaders(), "retry-after": String(retryAfter) } }
        }
      }
      // Landing late: the request is carried out (whoever still listens for its answer) only after the delay.
      const landsLate = delays.serviceCreateLandsMs > 0 && /\bserviceCreate\s*\(/.test(body.query)
      if (landsLate) await new Promise((done) => setTimeout(done, delays.serviceCreateLandsMs))
      const result = await graphql({ schema, source: body.query, rootValue, contextValue: { ...caller, landsLate }, variableValues: body.variables ?? {} })
      // The services and projects exist already; only the answer is late.
      if (delays.serviceCreateMs > 0 && /\bserviceCreate\s*\(/.test(body.query)) await new Promise((done) => setTimeout(done, delays.serviceCreateMs))
      if (delays.projectCreateMs > 0 && /\bprojectCreate\s*\(/.test(body.query)) await new Promise((done) => setTimeout(done, delays.projectCreateMs))
      state.remaining = Math.max(0, state.remaining - 1)
      return { status: 200, body: result, headers: rateLimitHeaders() }
    })

    return {
      ...emulator,
      /** RAILWAY_API_URL for the provider. */
      apiUrl: `${emulator.url}/graphql/v2`,
      /** Options for a provider on this emulator: the account token, the first environment, Hobby's limits. */
      providerOptions: (overrides: Partial<RailwayOptions> = {}): RailwayOptions => ({
        token: Redacted.make(accountToken),
        tokenKind: "account",
        projectId,
        environment: { id: environments[0]!.id },
        runtimeImage: "ghcr.io/xmtplabs/convos-runtime:latest",
        apiUrl: `${emulator.url}/graphql/v2`,
        ratePerSecond: 10,
        ratePerHour: 1_000,
        pageSize: 100,
        timeout: Duration.seconds(20),
        ...overrides
      }),
      projectId,
      environments,
      accountToken,
      projectToken,
      services: () => [...state.services.values()],
      /** Every project of the workspace, the pre-made one (`projectId`) included. */
      projects: () => [...state.projects.values()],
      volumes: () => [...state.volumes.values()],
      /** Accepted projectCreate and volumeCreate calls: which token, when. */
      creations: () => [...state.creations],
      /** From now on this token is refused with 401 (revoked in Railway's settings). */
      revoke: (token: string) => {
        state.revoked.add(token)
      },
      /** Calls per GraphQL operation name. */
      operations: () => ({ ...state.operations }),
      resetCounts: () => {
        state.operations = {}
      },
      /** `serviceCreate` answers `ms` late from now on (0: at once). */
      delayServiceCreate: (ms: number) => {
        delays.serviceCreateMs = ms
      },
      /** `projectCreate` answers `ms` late from now on (0: at once). */
      delayProjectCreate: (ms: number) => {
        delays.projectCreateMs = ms
      },
      /**
       * `serviceCreate` is carried out `ms` after it arrives (0: at once), even if its sender has gone meanwhile, and
       * may then make a second service of a name, as Railway does: a killed server's creates land after its restart.
       */
      landServiceCreateLate: (ms: number) => {
        delays.serviceCreateLandsMs = ms
      },
      /** How many late creates have made a second service of a taken name so far (removed since or not). */
      twinsLanded: () => state.twinsLanded,
      /** The instances' `/pool/provision` answers `ms` late from now on (with `instances`). */
      delayProvision: (ms: number) => {
        delays.provisionMs = ms
      },
      /** The instances read requests to these runtime paths (`/pool/health`, `/pool/provision`) and never answer them. */
      hangRuntime: (...paths: ReadonlyArray<string>) => {
        for (const path of paths) hungRuntimePaths.add(path)
      },
      /**
       * Ends every fault: pending GraphQL faults are dropped, hung runtime paths answer again, and the connections of
       * the requests left hanging are reset.
       */
      restore: () => {
        emulator.restore()
        hungRuntimePaths.clear()
        instances?.restore()
      },
      setMaxPageSize: (size: number) => {
        state.maxPageSize = size
      },
      /** Page `index` (0-based) of the listing fails; undefined to stop. */
      failPage: (index: number | undefined) => {
        state.failPage = index
      },
      /** Overrides the latest deployment's status of a service (CRASHED, SLEEPING, …). */
      setDeploymentStatus: (serviceId: string, status: string) => {
        const service = state.services.get(serviceId)
        const latest = service?.deployments.at(-1)
        if (service === undefined || latest === undefined) return
        latest.override = status
        notify(service, latest, status)
      },
      workspaceId,
      /** Notification rules, as `notificationRules` answers them. */
      rules: () => state.rules.map((r) => ({ ...r })),
      /** The next `count` webhook deliveries are lost (recorded as dropped, never sent). */
      dropWebhooks: (count: number) => {
        state.dropWebhooks = count
      },
      /** Webhook deliveries so far, in order. */
      deliveries: () => [...state.delivered],
      /** A project made outside the provider (another tool, an older run), with one "production" environment. */
      addProject: (name: string) => {
        const project: EmulatedProject = { id: randomUUID(), name, workspaceId, createdAt: Date.now(), environments: [{ id: `env-${randomUUID()}`, name: "production" }] }
        state.projects.set(project.id, project)
        return project
      },
      /** A service made outside the provider (another tool, an older run); in `inProject` or the pre-made project. */
      addService: (name: string, image = "ghcr.io/xmtplabs/convos-runtime:latest", inProject = projectId) => {
        const service: EmulatedService = { id: randomUUID(), name, projectId: inProject, createdAt: Date.now(), image, variables: {}, domain: `${name}.up.railway.app`, deployments: [] }
        state.services.set(service.id, service)
        deploy(service)
        return service
      },
      /** A volume made outside the provider, attached to `serviceId` or to nothing. */
      addVolume: (name: string, inProject: string, serviceId: string | null = null) => {
        const project = state.projects.get(inProject)!
        const volume: EmulatedVolume = { id: randomUUID(), name, projectId: inProject, environmentId: project.environments[0]!.id, serviceId, mountPath: "/data", sizeMB: limits.volumeSizeMB, createdAt: Date.now() }
        state.volumes.set(volume.id, volume)
        return volume
      }
    }
  })

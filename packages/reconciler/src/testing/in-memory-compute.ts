import { Clock, Context, Duration, Effect, Layer, Ref } from "effect"
import { type CreateServiceRequest, ServiceInfo } from "../domain/service.js"
import { type ProviderError, TransientError } from "../errors.js"
import { ComputeProvider, ServiceUpgrader } from "../services.js"
import { type Faults, makeFaults } from "./faults.js"

interface Service {
  readonly serviceId: string
  readonly name: string
  readonly image: string
  readonly env: Readonly<Record<string, string>>
  readonly createdAt: number
  /** When its latest deploy began (creation, a redeploy or a restart). */
  readonly deployedAt: number
  /** How many deploys it had: 1 at creation, one more per redeploy or restart. */
  readonly deployments: number
  /** Set when the platform says so, overriding the deploy progression. */
  readonly override: "CRASHED" | "SLEEPING" | undefined
  /** Left out of listings (the platform has not caught up yet). */
  readonly hidden: boolean
  /** Its own deploy time, when the platform draws one per service. */
  readonly deployTime: number | undefined
}

/** A service as tests see it: what it was created with, and its current deploy status. */
export interface InMemoryService {
  readonly info: ServiceInfo
  readonly env: Readonly<Record<string, string>>
  readonly deployments: number
}

/** Fault injection and inspection for the in-memory platform. */
export class InMemoryComputeControl extends Context.Tag("@warmpool/reconciler/testing/InMemoryComputeControl")<
  InMemoryComputeControl,
  Faults<ProviderError> & {
    readonly services: Effect.Effect<ReadonlyArray<InMemoryService>>
    /** The deploy status the service reports from now on. */
    readonly crash: (serviceId: string) => Effect.Effect<void>
    readonly sleep: (serviceId: string) => Effect.Effect<void>
    /** Hide a service from (or show it again in) listings. */
    readonly hide: (serviceId: string, hidden?: boolean) => Effect.Effect<void>
    /** The service disappears from the platform, as if deleted by hand. */
    readonly vanish: (serviceId: string) => Effect.Effect<void>
    /** How long a new service takes from QUEUED to SUCCESS. */
    readonly setDeployTime: (duration: Duration.DurationInput) => Effect.Effect<void>
    /**
     * Late writes: a create whose caller goes away (its process died) while the request is in flight still lands,
     * `draw()` × `within` later — as on a platform that finishes a request whatever became of its sender. It lands
     * as the platform received it: a new service, even if one of that name was made meanwhile. Undefined: none.
     */
    readonly landLate: (late: { readonly within: Duration.DurationInput; readonly draw: () => number } | undefined) => Effect.Effect<void>
  }
>() {}

/** QUEUED → BUILDING → DEPLOYING → SUCCESS over the deploy time, driven by the Clock. */
const deployStatusAt = (service: Service, now: number, shared: number): string => {
  if (service.override !== undefined) return service.override
  const deployTime = service.deployTime ?? shared
  const progress = deployTime === 0 ? 1 : (now - service.deployedAt) / deployTime
  if (progress >= 1) return "SUCCESS"
  if (progress >= 2 / 3) return "DEPLOYING"
  if (progress >= 1 / 3) return "BUILDING"
  return "QUEUED"
}

export interface InMemoryComputeOptions {
  /** From QUEUED to SUCCESS. Default: zero (instantly running). */
  readonly deployTime?: Duration.DurationInput
  /** Draws each new service's own deploy time (a distribution, for simulations); overrides `deployTime`. */
  readonly drawDeployTime?: () => Duration.DurationInput
}

const make = (options: InMemoryComputeOptions) =>
  Effect.gen(function*() {
    const state = yield* Ref.make(new Map<string, Service>())
    const counter = yield* Ref.make(0)
    const deployTime = yield* Ref.make(Duration.toMillis(options.deployTime ?? 0))
    const faults = yield* makeFaults<ProviderError>()
    const late = yield* Ref.make<{ readonly within: number; readonly draw: () => number } | undefined>(undefined)

    const info = (service: Service, now: number, deploy: number) =>
      new ServiceInfo({
        serviceId: service.serviceId,
        name: service.name,
        url: `http://${service.name}.in-memory.test`,
        deployStatus: deployStatusAt(service, now, deploy),
        image: service.image,
        createdAt: new Date(service.createdAt)
      })

    const snapshot = (filter: (s: Service) => boolean) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const deploy = yield* Ref.get(deployTime)
        const services = yield* Ref.get(state)
        return [...services.values()].filter(filter).map((s) => ({ service: s, info: info(s, now, deploy) }))
      })

    const update = (serviceId: string, f: (s: Service) => Service | undefined) =>
      Ref.update(state, (services) => {
        const service = services.get(serviceId)
        if (service === undefined) return services
        const copy = new Map(services)
        const next = f(service)
        if (next === undefined) copy.delete(serviceId)
        else copy.set(serviceId, next)
        return copy
      })

    /** A new service of the request's name, whatever exists. */
    const make = (request: CreateServiceRequest) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const service: Service = {
          serviceId: `svc-${yield* Ref.updateAndGet(counter, (n) => n + 1)}`,
          name: request.name,
          image: request.image,
          env: request.env,
          createdAt: now,
          deployedAt: now,
          deployments: 1,
          override: undefined,
          hidden: false,
          deployTime: options.drawDeployTime === undefined ? undefined : Duration.toMillis(options.drawDeployTime())
        }
        yield* Ref.update(state, (s) => new Map(s).set(service.serviceId, service))
        return service
      })

    /** The request reached the platform and its sender went away: it lands later, on a fiber of its own. */
    const landLater = (request: CreateServiceRequest) =>
      Effect.flatMap(Ref.get(late), (landing) =>
        landing === undefined
          ? Effect.void
          : Effect.forkDaemon(Effect.zipRight(Effect.sleep(Math.floor(landing.draw() * landing.within)), make(request))).pipe(Effect.asVoid))

    const compute: Context.Tag.Service<ComputeProvider> = {
      list: (prefix) =>
        faults.guard("list").pipe(
          Effect.zipRight(snapshot((s) => !s.hidden && s.name.startsWith(prefix))),
          Effect.map((found) => found.map(({ info }) => info))
        ),
      create: (request: CreateServiceRequest) =>
        Effect.gen(function*() {
          yield* faults.guard("create").pipe(Effect.onInterrupt(() => landLater(request)))
          const now = yield* Clock.currentTimeMillis
          const deploy = yield* Ref.get(deployTime)
          const existing = [...(yield* Ref.get(state)).values()].find((s) => s.name === request.name)
          const service = existing ?? (yield* make(request))
          const created = info(service, now, deploy)
          return { serviceId: created.serviceId, url: created.url, deployStatus: created.deployStatus }
        }),
      destroy: (serviceId) => faults.guard("destroy").pipe(Effect.zipRight(update(serviceId, () => undefined)))
    }

    const upgrader: Context.Tag.Service<ServiceUpgrader> = {
      redeploy: (serviceId, request) =>
        Effect.gen(function*() {
          yield* faults.guard("redeploy")
          const now = yield* Clock.currentTimeMillis
          // A new deploy on the new image; the service's own variables stay, the template's are set over them.
          yield* update(serviceId, (s) => ({ ...s, image: request.image, env: { ...s.env, ...request.env }, deployedAt: now, deployments: s.deployments + 1, override: undefined }))
        }),
      restart: (serviceId) =>
        Effect.gen(function*() {
          yield* faults.guard("restart")
          const now = yield* Clock.currentTimeMillis
          yield* update(serviceId, (s) => ({ ...s, deployedAt: now, deployments: s.deployments + 1, override: undefined }))
        })
    }

    const control: Context.Tag.Service<InMemoryComputeControl> = {
      failNext: faults.failNext,
      setLatency: faults.setLatency,
      calls: faults.calls,
      services: snapshot(() => true).pipe(Effect.map((found) => found.map(({ info, service }) => ({ info, env: service.env, deployments: service.deployments })))),
      crash: (serviceId) => update(serviceId, (s) => ({ ...s, override: "CRASHED" })),
      sleep: (serviceId) => update(serviceId, (s) => ({ ...s, override: "SLEEPING" })),
      hide: (serviceId, hidden = true) => update(serviceId, (s) => ({ ...s, hidden })),
      vanish: (serviceId) => update(serviceId, () => undefined),
      setDeployTime: (duration) => Ref.set(deployTime, Duration.toMillis(duration)),
      landLate: (landing) => Ref.set(late, landing === undefined ? undefined : { within: Duration.toMillis(landing.within), draw: landing.draw })
    }
    return Context.make(ComputeProvider, compute).pipe(Context.add(ServiceUpgrader, upgrader), Context.add(InMemoryComputeControl, control))
  })

/** A `ComputeProvider` (and `ServiceUpgrader`) in memory: idempotent like a real one, deploys progress on the Clock, faults on demand. */
export const InMemoryCompute = {
  layer: (options: InMemoryComputeOptions = {}) => Layer.effectContext(make(options)),
  /** A retryable platform failure, for `failNext`. */
  unavailable: (operation = "compute") => new TransientError({ operation, message: "platform unavailable (injected)" })
}

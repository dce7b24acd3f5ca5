/**
 * `ComputeProvider` on this machine: each instance is a child process on a loopback port running a program (the
 * reference runtime unless told otherwise). A state file in `dataDir` remembers them, so a restarted server finds
 * live ones again and reports dead ones as CRASHED (the plan then reaps them). Children are stopped, and waited
 * for, on shutdown.
 */
import { ComputeProvider, type CreatedService, freePort, InvalidRequestError, NotFoundError, ServiceInfo, ServiceUpgrader, TransientError } from "@warmpool/reconciler"
import { referenceRuntimeEntry } from "@warmpool/providers-convos/reference-runtime"
import { Clock, Context, type Duration, Effect, Layer, Ref, Schedule, type Scope } from "effect"
import { spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

/**
 * What each instance runs. The process gets the instance's environment and `PORT` (a free port to listen on, at
 * 127.0.0.1), `STARTUP_DELAY_MS` (the option below) and `WARMPOOL_SERVICE_ID` (how the provider knows its own).
 */
export interface LocalProgram {
  readonly command: string
  readonly args: ReadonlyArray<string>
}

/** A Node program from its entry file: run by this Node, through tsx when it is TypeScript source. */
export const nodeProgram = (entry: URL | string): LocalProgram => {
  const path = typeof entry === "string" ? entry : fileURLToPath(entry)
  return { command: process.execPath, args: path.endsWith(".ts") ? ["--import", "tsx", path] : [path] }
}

export interface LocalComputeOptions {
  /** Where the state file lives. */
  readonly dataDir: string
  /** What every instance runs. Default: the Convos reference runtime. */
  readonly program?: LocalProgram
  /** How long a new instance takes to report ready (a realistic cold start). Default 5 s. */
  readonly startupDelayMs?: number
  /** Stop the children when the layer closes. Default true. */
  readonly stopOnShutdown?: boolean
}

interface LocalService {
  readonly serviceId: string
  readonly name: string
  readonly pid: number
  readonly port: number
  readonly image: string
  readonly createdAt: number
}

/** Whether a process with this pid exists. */
export const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/**
 * Alive, and still the process spawned for this service (a pid can be reused by another program). Told by the
 * environment it started with, which a program cannot lose by renaming itself (as it can its command line).
 */
const isOurs = (s: LocalService) => {
  if (!isAlive(s.pid)) return false
  try {
    return readFileSync(`/proc/${s.pid}/environ`, "utf8").split("\0").includes(`WARMPOOL_SERVICE_ID=${s.serviceId}`)
  } catch {
    return true // no /proc (macOS): trust the signal check
  }
}

const signal = (s: LocalService, name: NodeJS.Signals) => {
  if (!isOurs(s)) return
  try {
    process.kill(s.pid, name)
  } catch {
    // already gone
  }
}

const stop = (s: LocalService) => signal(s, "SIGTERM")

/**
 * Waits until a process is gone. A child of ours is gone at its exit event: until then it is a pid still (not
 * yet reaped), so `/proc` cannot tell. One found in the state file (a previous run's, now init's child) is
 * watched through `/proc`.
 */
const exited = (s: LocalService, exits: ReadonlyMap<number, Promise<void>>) => {
  const exit = exits.get(s.pid)
  return exit !== undefined
    ? Effect.promise(() => exit)
    : Effect.sync(() => !isOurs(s)).pipe(Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (gone) => gone }))
}

/** Stops every one and waits until they are gone (up to 5 s, then SIGKILL), so none outlives its server. */
const stopAll = (services: ReadonlyArray<LocalService>, exits: ReadonlyMap<number, Promise<void>>) =>
  Effect.gen(function*() {
    const allGone = (within: Duration.DurationInput) =>
      Effect.forEach(services, (s) => exited(s, exits), { concurrency: "unbounded", discard: true }).pipe(
        Effect.timeoutTo({ duration: within, onSuccess: () => true, onTimeout: () => false }),
        // Processes die in real time, whatever clock the caller runs on (tests run theirs on a TestClock).
        Effect.withClock(Clock.make())
      )
    services.forEach(stop)
    if (yield* allGone("5 seconds")) return
    services.forEach((s) => signal(s, "SIGKILL"))
    yield* allGone("2 seconds")
  })

export const make = (
  options: LocalComputeOptions
): Effect.Effect<{ readonly compute: ComputeProvider["Type"]; readonly upgrader: ServiceUpgrader["Type"] }, never, Scope.Scope> =>
  Effect.gen(function*() {
    const program = options.program ?? nodeProgram(referenceRuntimeEntry)
    mkdirSync(options.dataDir, { recursive: true })
    const file = join(options.dataDir, "local-services.json")
    const load = (): ReadonlyArray<LocalService> => (existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : [])
    const state = yield* Ref.make(load())
    const save = (services: ReadonlyArray<LocalService>) =>
      Effect.sync(() => {
        // Write then rename: a crash mid-write never leaves half a file.
        writeFileSync(`${file}.tmp`, JSON.stringify(services, null, 2))
        renameSync(`${file}.tmp`, file)
      })
    // One change at a time to the state file.
    const lock = yield* Effect.makeSemaphore(1)
    // The exit of every child this run spawned, by pid: what a stop waits for.
    const exits = new Map<number, Promise<void>>()

    const info = (s: LocalService) =>
      new ServiceInfo({
        serviceId: s.serviceId,
        name: s.name,
        url: `http://127.0.0.1:${s.port}`,
        deployStatus: isOurs(s) ? "SUCCESS" : "CRASHED",
        image: s.image,
        createdAt: new Date(s.createdAt)
      })

    // What each child of this run was started with: a restart starts the same again (a state file keeps no secrets).
    const started = new Map<string, Readonly<Record<string, string>>>()

    /** A new child; `same` keeps a service's id and port (a restart: a new container behind the same URL). */
    const spawnRuntime = (name: string, image: string, env: Readonly<Record<string, string>>, same?: Pick<LocalService, "serviceId" | "port">) =>
      Effect.gen(function*() {
        const port = same?.port ?? (yield* freePort.pipe(Effect.mapError((e) => new TransientError({ operation: "local.create", message: e.message }))))
        const serviceId = same?.serviceId ?? `local-${randomUUID().slice(0, 8)}`
        started.set(serviceId, env)
        const child = spawn(program.command, program.args, {
          env: {
            PATH: process.env.PATH ?? "",
            ...env,
            PORT: String(port),
            STARTUP_DELAY_MS: String(options.startupDelayMs ?? 5000),
            WARMPOOL_SERVICE_ID: serviceId
          },
          stdio: "ignore",
          detached: false
        })
        if (child.pid === undefined) {
          // Not started (e.g. no such command): its error event says why.
          const error = yield* Effect.async<Error>((resume) => void child.once("error", (e) => resume(Effect.succeed(e))))
          return yield* new TransientError({ operation: "local.create", message: `could not start ${name}: ${error.message}` })
        }
        const pid = child.pid
        // Forgotten once it has exited (a destroyed or crashed child): a stop then finds it gone through /proc.
        exits.set(pid, new Promise<void>((resolve) => child.once("exit", () => {
          exits.delete(pid)
          resolve()
        })))
        child.unref()
        const service: LocalService = { serviceId, name, pid, port, image, createdAt: Date.now() }
        return service
      })

    const compute = ComputeProvider.of({
      list: (prefix) => Ref.get(state).pipe(Effect.map((services) => services.filter((s) => s.name.startsWith(prefix)).map(info))),
      create: (request) =>
        // Uninterruptible: a process spawned by a create that shutdown cut short would escape the state file and outlive its server.
        lock.withPermits(1)(Effect.uninterruptible(Effect.gen(function*() {
          const existing = (yield* Ref.get(state)).find((s) => s.name === request.name)
          const service = existing ?? (yield* spawnRuntime(request.name, request.image, request.env))
          if (existing === undefined) yield* Ref.updateAndGet(state, (all) => [...all, service]).pipe(Effect.flatMap(save))
          const created = info(service)
          const answer: CreatedService = { serviceId: created.serviceId, url: created.url, deployStatus: created.deployStatus }
          return answer
        }))),
      destroy: (serviceId) =>
        lock.withPermits(1)(Effect.gen(function*() {
          const found = (yield* Ref.get(state)).find((s) => s.serviceId === serviceId)
          if (found !== undefined) stop(found)
          yield* Ref.updateAndGet(state, (all) => all.filter((s) => s.serviceId !== serviceId)).pipe(Effect.flatMap(save))
        }))
    })

    // Every image runs the same program here, so a redeploy records the image and restarts nothing.
    const upgrader = ServiceUpgrader.of({
      redeploy: (serviceId, request) =>
        lock.withPermits(1)(
          Ref.updateAndGet(state, (all) => all.map((s) => (s.serviceId === serviceId ? { ...s, image: request.image } : s))).pipe(Effect.flatMap(save))
        ),
      restart: (serviceId) =>
        lock.withPermits(1)(Effect.uninterruptible(Effect.gen(function*() {
          const found = (yield* Ref.get(state)).find((s) => s.serviceId === serviceId)
          const env = started.get(serviceId)
          if (found === undefined) return yield* new NotFoundError({ operation: "local.restart", message: `no service ${serviceId}` })
          if (env === undefined) {
            return yield* new InvalidRequestError({ operation: "local.restart", message: `service ${serviceId} was started by an earlier run: its variables are not known here` })
          }
          stop(found)
          yield* exited(found, exits)
          const fresh = yield* spawnRuntime(found.name, found.image, env, found)
          yield* Ref.updateAndGet(state, (all) => all.map((s) => (s.serviceId === serviceId ? { ...fresh, createdAt: found.createdAt } : s))).pipe(Effect.flatMap(save))
        })))
    })

    if (options.stopOnShutdown ?? true) {
      yield* Effect.addFinalizer(() =>
        lock.withPermits(1)(Effect.gen(function*() {
          yield* stopAll(yield* Ref.get(state), exits)
          yield* save([])
        }))
      )
    }
    return { compute, upgrader }
  })

export const LocalCompute = {
  layer: (options: LocalComputeOptions): Layer.Layer<ComputeProvider | ServiceUpgrader> =>
    Layer.scopedContext(Effect.map(make(options), ({ compute, upgrader }) => Context.make(ComputeProvider, compute).pipe(Context.add(ServiceUpgrader, upgrader))))
}

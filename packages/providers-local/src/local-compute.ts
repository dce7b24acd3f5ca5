/**
 * `ComputeProvider` on this machine: each instance is a child process on a loopback port running the
 * reference runtime. A state file in `dataDir` remembers them, so a restarted server finds live ones again
 * and reports dead ones as CRASHED (the plan then reaps them). Children are stopped, and waited for, on shutdown.
 */
import { ComputeProvider, type CreatedService, ServiceInfo, ServiceUpgrader, TransientError } from "@warmpool/reconciler"
import { freePort } from "@warmpool/reconciler/postgres"
import { referenceRuntimeEntry } from "@warmpool/providers-convos/reference-runtime"
import { Clock, Context, type Duration, Effect, Layer, Ref, Schedule, type Scope } from "effect"
import { spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

export interface LocalComputeOptions {
  /** Where the state file lives. */
  readonly dataDir: string
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

const entryPath = fileURLToPath(referenceRuntimeEntry)

/** Whether a process with this pid exists. */
export const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Alive, and still our runtime (a pid can be reused by another program). */
const isOurs = (pid: number) => {
  if (!isAlive(pid)) return false
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(entryPath)
  } catch {
    return true // no /proc (macOS): trust the signal check
  }
}

const signal = (pid: number, name: NodeJS.Signals) => {
  if (!isOurs(pid)) return
  try {
    process.kill(pid, name)
  } catch {
    // already gone
  }
}

const stop = (pid: number) => signal(pid, "SIGTERM")

/**
 * Waits until a process is gone. A child of ours is gone at its exit event: until then it is a pid still (not
 * yet reaped), so `/proc` cannot tell. One found in the state file (a previous run's, now init's child) is
 * watched through `/proc`.
 */
const exited = (pid: number, exits: ReadonlyMap<number, Promise<void>>) => {
  const exit = exits.get(pid)
  return exit !== undefined
    ? Effect.promise(() => exit)
    : Effect.sync(() => !isOurs(pid)).pipe(Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (gone) => gone }))
}

/** Stops every one and waits until they are gone (up to 5 s, then SIGKILL), so none outlives its server. */
const stopAll = (pids: ReadonlyArray<number>, exits: ReadonlyMap<number, Promise<void>>) =>
  Effect.gen(function*() {
    const allGone = (within: Duration.DurationInput) =>
      Effect.forEach(pids, (pid) => exited(pid, exits), { concurrency: "unbounded", discard: true }).pipe(
        Effect.timeoutTo({ duration: within, onSuccess: () => true, onTimeout: () => false }),
        // Processes die in real time, whatever clock the caller runs on (tests run theirs on a TestClock).
        Effect.withClock(Clock.make())
      )
    pids.forEach(stop)
    if (yield* allGone("5 seconds")) return
    pids.forEach((pid) => signal(pid, "SIGKILL"))
    yield* allGone("2 seconds")
  })

export const make = (
  options: LocalComputeOptions
): Effect.Effect<{ readonly compute: ComputeProvider["Type"]; readonly upgrader: ServiceUpgrader["Type"] }, never, Scope.Scope> =>
  Effect.gen(function*() {
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
        deployStatus: isOurs(s.pid) ? "SUCCESS" : "CRASHED",
        image: s.image,
        createdAt: new Date(s.createdAt)
      })

    const spawnRuntime = (name: string, image: string, env: Readonly<Record<string, string>>) =>
      Effect.gen(function*() {
        const port = yield* freePort.pipe(Effect.mapError((e) => new TransientError({ operation: "local.create", message: e.message })))
        const args = entryPath.endsWith(".ts") ? ["--import", "tsx", entryPath] : [entryPath]
        const child = spawn(process.execPath, args, {
          env: { PATH: process.env.PATH ?? "", ...env, PORT: String(port), STARTUP_DELAY_MS: String(options.startupDelayMs ?? 5000) },
          stdio: "ignore",
          detached: false
        })
        if (child.pid === undefined) {
          return yield* new TransientError({ operation: "local.create", message: `could not start ${name}` })
        }
        const pid = child.pid
        // Forgotten once it has exited (a destroyed or crashed child): a stop then finds it gone through /proc.
        exits.set(pid, new Promise<void>((resolve) => child.once("exit", () => {
          exits.delete(pid)
          resolve()
        })))
        child.unref()
        const service: LocalService = { serviceId: `local-${randomUUID().slice(0, 8)}`, name, pid: child.pid, port, image, createdAt: Date.now() }
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
          if (found !== undefined) stop(found.pid)
          yield* Ref.updateAndGet(state, (all) => all.filter((s) => s.serviceId !== serviceId)).pipe(Effect.flatMap(save))
        }))
    })

    // Every image runs the same reference runtime here, so a redeploy records the image and restarts nothing.
    const upgrader = ServiceUpgrader.of({
      redeploy: (serviceId, request) =>
        lock.withPermits(1)(
          Ref.updateAndGet(state, (all) => all.map((s) => (s.serviceId === serviceId ? { ...s, image: request.image } : s))).pipe(Effect.flatMap(save))
        )
    })

    if (options.stopOnShutdown ?? true) {
      yield* Effect.addFinalizer(() =>
        lock.withPermits(1)(Effect.gen(function*() {
          yield* stopAll((yield* Ref.get(state)).map((service) => service.pid), exits)
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

/**
 * The replaced system's operator routes beyond its README: settings, a pool's live changes, recheck, the agents'
 * lists, and the progress streams of drain, replenish and upgrade; plus `/api/pool/info` and `/version`.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import {
  type ControllerService,
  currentTemplate,
  HealthProbe,
  healthOf,
  type Instance,
  InstanceStore,
  type InstanceStatus,
  runtimeVersionOf,
  ServiceUpgrader,
  upgradeInstance
} from "@warmpool/reconciler"
import { Clock, Duration, Effect, Option, Schedule } from "effect"
import { BadRequest, databaseUnavailable, KeyScope, NotFound, NotImplemented, PoolApi } from "../api/api.js"
import type { Deployment } from "../config.js"
import { PoolSettings } from "../settings/pool-settings.js"
import { SERVER_VERSION } from "../version.js"
import { protectedMessage, toPublic } from "./handlers.js"
import { pickPool, poolCounts, poolsInContext } from "./pools.js"
import { progressResponse, type Send } from "./progress.js"

export const AboutLive = (deployment: Deployment) =>
  HttpApiBuilder.group(PoolApi, "about", (handlers) =>
    handlers
      .handle("info", () => Effect.succeed(deployment))
      .handle("version", () => Effect.succeed({ version: SERVER_VERSION, environment: deployment.environment })))

/** How long a stream waits for the pool to finish what it asked (a delete, a create) before saying it failed. */
const STREAM_DEADLINE = Duration.minutes(2)
const POLL = Schedule.spaced(Duration.millis(250))

/** `/api/pool/agents`'s lists: its keys, and the status each lists. */
const agentLists = {
  claimed: "claimed",
  pendingAcceptance: "pending_acceptance",
  tainted: "tainted",
  crashed: "crashed",
  idle: "idle",
  starting: "starting"
} as const satisfies Record<string, InstanceStatus>

const settingsUnavailable = new NotImplemented({ message: "pool settings need the server's Postgres database" })

/** `ghcr.io/x/runtime:v2` → `v2` (the replaced system's `targetTag`). */
const tagOf = (image: string) => (image.includes(":") ? image.slice(image.lastIndexOf(":") + 1) : "")

export const OperateLive = HttpApiBuilder.group(PoolApi, "operate", (handlers) =>
  Effect.gen(function*() {
    const pools = yield* poolsInContext
    const store = yield* InstanceStore
    const health = yield* HealthProbe
    const settings = yield* Effect.serviceOption(PoolSettings)
    const upgrader = yield* Effect.serviceOption(ServiceUpgrader)
    const counts = poolCounts(store, pools.all)
    const withSettings = <A, E>(f: (s: PoolSettings["Type"]) => Effect.Effect<A, E>) =>
      Option.match(settings, { onNone: () => Effect.fail(settingsUnavailable), onSome: f })

    /** Polls `row` until `done` says it is finished, at most STREAM_DEADLINE; none when the deadline passed. */
    const watch = <A>(id: string, done: (row: Option.Option<Instance>) => A | undefined) =>
      store.get(id).pipe(
        Effect.map(done),
        Effect.catchAll(() => Effect.succeed(undefined)),
        Effect.repeat({ schedule: POLL, until: (found) => found !== undefined }),
        Effect.timeoutOption(STREAM_DEADLINE),
        Effect.map(Option.flatMap(Option.fromNullable))
      )

    const drainStream = (controller: ControllerService, count: number, send: Send) =>
      Effect.gen(function*() {
        const rows = new Map((yield* store.list(controller.spec.name)).map((row) => [row.id, row]))
        // Marked atomically (never a claimed or protected one); the pass, triggered now, removes them.
        const marked = yield* controller.drain(count)
        const drainedIds: Array<string> = []
        let failed = 0
        yield* Effect.forEach(marked, (id, i) => {
          const step = (step: string, status: string, message = "") =>
            send({ type: "step", instanceNum: i + 1, instanceId: id, instanceName: rows.get(id)?.name ?? id, step, status, message })
          return step("deleting", "active", "service, credentials and row being removed").pipe(
            Effect.zipRight(watch(id, (row) => (Option.isNone(row) ? true : undefined))),
            Effect.flatMap(Option.match({
              onSome: () => Effect.sync(() => drainedIds.push(id)).pipe(Effect.zipRight(step("done", "ok"))),
              onNone: () => Effect.sync(() => failed++).pipe(Effect.zipRight(step("error", "fail", "still being deleted; the pool keeps trying")))
            }))
          )
        }, { concurrency: "unbounded", discard: true })
        return { drained: drainedIds.length, failed, drainedIds, counts: yield* counts }
      })

    const replenishStream = (controller: ControllerService, count: number, send: Send) =>
      Effect.gen(function*() {
        const pool = controller.spec.name
        const before = yield* store.list(pool)
        const known = new Set(before.map((row) => row.id))
        const room = Math.max(0, controller.spec.maxTotal - before.length)
        const wanted = Math.min(count, room)
        for (let n = wanted + 1; n <= count; n++) {
          yield* send({ type: "step", instanceNum: n, step: "error", status: "fail", message: `the pool is at its maximum (maxTotal ${controller.spec.maxTotal})` })
        }
        // The pass runs to its end whether or not the client stays.
        yield* Effect.forkDaemon(controller.replenish(wanted))
        // Each new row of the pool is one of ours, numbered as it appears; it is done once its service exists.
        const numbered = new Map<string, number>()
        const settled = new Set<string>()
        let created = 0
        const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(STREAM_DEADLINE)
        while (settled.size < wanted && (yield* Clock.currentTimeMillis) < deadline) {
          const rows = new Map((yield* store.list(pool)).map((row) => [row.id, row]))
          for (const row of rows.values()) {
            if (known.has(row.id) || numbered.has(row.id) || numbered.size >= wanted) continue
            numbered.set(row.id, numbered.size + 1)
            yield* send({ type: "step", instanceNum: numbered.size, instanceId: row.id, step: "create", status: "active", message: "credentials and service being made" })
          }
          for (const [id, instanceNum] of numbered) {
            if (settled.has(id)) continue
            const row = rows.get(id)
            if (row === undefined || row.status === "deleting") {
              settled.add(id)
              yield* send({ type: "step", instanceNum, instanceId: id, step: "error", status: "fail", message: row?.lastError ?? "the create failed" })
            } else if (row.serviceId !== null) {
              settled.add(id)
              created++
              yield* send({ type: "instance", instanceNum, instance: { id, serviceId: row.serviceId, url: row.url, name: row.name } })
              yield* send({ type: "step", instanceNum, instanceId: id, step: "done", status: "ok", message: "" })
            }
          }
          if (settled.size < wanted) yield* Effect.sleep(Duration.millis(250))
        }
        const failed = count - created
        return { created, failed, counts: yield* counts }
      })

    const upgradeStream = (ids: ReadonlyArray<string>, image: string | undefined, send: Send) =>
      Effect.gen(function*() {
        const rows = yield* Effect.forEach(ids, (id) => store.get(id))
        yield* Effect.forEach(ids, (id, i) => {
          const row = Option.getOrUndefined(rows[i]!)
          return send({
            type: "info",
            instanceNum: i + 1,
            instanceId: id,
            name: row?.attributes.agentName ?? row?.name ?? id,
            // What the runtime says it runs, else its image's tag (as the replaced system, "unknown" when neither).
            version: row?.attributes.runtimeVersion ?? (row === undefined || row.runtimeImage === null ? "unknown" : tagOf(row.runtimeImage) || "unknown"),
            harness: row?.pool ?? "unknown",
            runtimeType: row?.pool ?? null,
            railwayUrl: null
          })
        }, { discard: true })
        let upgraded = 0
        let failed = 0
        for (const [i, id] of ids.entries()) {
          const step = (step: string, status: string, message: string, extra: Record<string, unknown> = {}) =>
            send({ type: "step", instanceNum: i + 1, instanceId: id, step, status, message, ...extra })
          const row = Option.getOrUndefined(rows[i]!)
          const refused = row === undefined
            ? "Instance not found"
            : Option.isNone(upgrader)
            ? "this compute provider cannot redeploy services"
            : pools.all.some((c) => c.protectedIds.has(id))
            ? protectedMessage(id, "upgraded")
            : undefined
          if (refused !== undefined || Option.isNone(upgrader)) {
            failed++
            yield* step("error", "fail", refused ?? "")
            continue
          }
          const controller = yield* pools.pick(row!.pool).pipe(Effect.orElseSucceed(() => pools.all[0]!))
          yield* step("deploy", "active", "Deploying...")
          const outcome = yield* upgradeInstance(controller.spec, id, image).pipe(
            Effect.provideService(ServiceUpgrader, upgrader.value),
            Effect.provideService(InstanceStore, store),
            Effect.either
          )
          if (outcome._tag === "Right") {
            upgraded++
            const target = outcome.right.runtimeImage ?? image ?? controller.spec.template.image
            yield* step("done", "ok", target, { targetImage: target, targetTag: tagOf(target) })
          } else {
            failed++
            yield* step("error", "fail", outcome.left.message)
          }
        }
        return { upgraded, failed, total: ids.length, counts: yield* counts }
      })

    return handlers
      .handle("scope", () => Effect.map(KeyScope, (scope) => ({ scope })))
      .handle("settings", () => withSettings((s) => s.seed))
      .handle("putSettings", ({ payload }) =>
        withSettings((s) =>
          s.putSeed(payload).pipe(
            Effect.catchTags({
              SettingsRejected: (e) => Effect.fail({ ...e.settings, errors: [...e.errors] }),
              StoreError: databaseUnavailable
            })
          )))
      .handle("putPool", ({ path, payload }) =>
        withSettings((s) =>
          s.putPool(path.name, payload).pipe(
            Effect.map((spec) => ({
              name: spec.name,
              default: spec.name === pools.all[0]?.spec.name,
              minIdle: spec.minIdle,
              maxTotal: spec.maxTotal,
              maxSurge: spec.maxSurge,
              image: spec.template.image,
              templateHash: currentTemplate(spec).hash
            })),
            Effect.catchTags({
              PoolChangeRejected: (e) => new BadRequest({ message: e.errors.join("; ") }),
              UnknownPool: (e) => new NotFound({ message: e.message }),
              StoreError: databaseUnavailable
            })
          )))
      .handle("recheck", ({ path }) =>
        Effect.gen(function*() {
          const found = yield* store.get(path.id)
          if (Option.isNone(found)) return yield* new NotFound({ message: `no instance ${path.id}` })
          const row = found.value
          const answer = (status: string, changed: boolean, reason: string) => ({ ok: true as const, id: row.id, status, changed, reason })
          if (row.url === null) return answer(row.status, false, "no_url")
          const probed = yield* health.check({ id: row.id, url: row.url })
          if (healthOf(probed) !== "ready") return answer(row.status, false, "health_failed")
          // The version the runtime reports now (an instance upgraded in place says so here first).
          const runtimeVersion = runtimeVersionOf(probed)
          const patch = runtimeVersion === undefined ? undefined : { attributes: { runtimeVersion } }
          if (row.status !== "starting") {
            if (patch !== undefined && row.attributes.runtimeVersion !== runtimeVersion) {
              yield* store.transition({ id: row.id, from: [row.status], to: row.status, patch }).pipe(Effect.catchTag("StaleStatusError", () => Effect.void))
            }
            return answer(row.status, false, "healthy")
          }
          // Ready now: idle at once, as the readiness loop would have made it; a pass refills behind it.
          const marked = yield* store.transition({ id: row.id, from: ["starting"], to: "idle", ...(patch === undefined ? {} : { patch }) }).pipe(Effect.option)
          if (Option.isNone(marked)) return answer((yield* store.get(row.id)).pipe(Option.match({ onNone: () => "deleted", onSome: (r) => r.status })), false, "status_changed")
          yield* pools.pick(row.pool).pipe(Effect.flatMap((c) => c.trigger), Effect.ignore)
          return answer("idle", true, "ready")
        }).pipe(Effect.catchTag("StoreError", databaseUnavailable)))
      .handle("agents", () =>
        Effect.gen(function*() {
          const rows = (yield* Effect.forEach(pools.all, (c) => store.list(c.spec.name))).flat()
          const show = (row: Instance) => ({ ...toPublic(row), instructions: row.attributes.instructions ?? null })
          return Object.fromEntries(Object.entries(agentLists).map(([key, status]) => [key, rows.filter((r) => r.status === status).map(show)])) as Record<
            keyof typeof agentLists,
            Array<ReturnType<typeof show>>
          >
        }).pipe(Effect.catchTag("StoreError", databaseUnavailable)))
      .handle("drainStream", ({ urlParams }) =>
        Effect.map(pickPool(pools, urlParams.pool), (controller) => progressResponse((send) => drainStream(controller, urlParams.count ?? 20, send))))
      .handle("replenishStream", ({ urlParams }) =>
        Effect.map(pickPool(pools, urlParams.pool), (controller) => progressResponse((send) => replenishStream(controller, urlParams.count ?? 1, send))))
      .handle("upgradeStream", ({ urlParams }) => {
        const ids = (urlParams.ids ?? "").split(",").map((id) => id.trim()).filter((id) => id !== "")
        if (ids.length === 0) return Effect.fail(new BadRequest({ message: "No instance IDs: give ids=a,b" }))
        return Effect.succeed(progressResponse((send) => upgradeStream(ids, urlParams.image || undefined, send)))
      })
  }))

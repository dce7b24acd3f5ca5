/**
 * Railway past one project, on the emulator:
 * - `railway.placement.sharded.calls_per_pass.1000`: a steady pass (nothing to change) over 1,000 instances in
 *   100 sharded projects: the real Controller, rows in memory. Target ≤ 10 (one listing across projects).
 * - `railway.tokens.creates_per_minute.3tokens`: projects made per minute by three tokens with a cooldown each,
 *   more creates asked for than they can make. Run on a scaled clock: the cooldown and the emulator's limit are
 *   1 s standing for Railway's 30 s, and the count over ten cooldowns is scaled back to a minute of 30 s
 *   cooldowns (the limit allows 6). Target ≥ 5.5.
 */
import { ComputeProvider, PoolSpec } from "@warmpool/reconciler"
import { measureSteadyPass } from "./calls-per-pass.js"
import { Context, Duration, Effect, Layer, Logger, LogLevel, Redacted } from "effect"
import { RailwayCompute } from "../src/index.js"
import { startRailwayEmulator } from "../src/emulator/index.js"

const PROJECTS = 100
const PER_PROJECT = 10
const PREFIX = "wp-shard-"

const shardedSteadyPass = Effect.gen(function*() {
  const emulator = yield* startRailwayEmulator({ deployMs: 0 })
  const size = PROJECTS * PER_PROJECT
  const spec = new PoolSpec({ name: "bench", namePrefix: "convos-agent-", minIdle: size, maxTotal: size * 2, template: { image: "img", env: {} } })
  const services = Array.from({ length: PROJECTS }, (_, p) => {
    const project = emulator.addProject(`${PREFIX}${p + 1}`)
    return Array.from({ length: PER_PROJECT }, (_, i) => emulator.addService(`convos-agent-${p}x${i}`, "img", project.id))
  }).flat()
  const compute = RailwayCompute.layer(emulator.providerOptions({
    runtimeImage: "img",
    placement: { _tag: "sharded", workspaceId: emulator.workspaceId, servicesPerProject: PER_PROJECT, projectPrefix: PREFIX },
    ratePerSecond: 10_000,
    ratePerHour: 1_000_000,
    timeout: Duration.seconds(10)
  }))
  return yield* Effect.map(measureSteadyPass(emulator, spec, services, compute), (m) => m.calls)
}).pipe(Effect.scoped)

const SCALED_COOLDOWN_MS = 1_000
const RAILWAY_COOLDOWN_MS = 30_000
const WINDOW_COOLDOWNS = 10

const tokenThroughput = Effect.gen(function*() {
  const tokens = ["bench-a", "bench-b", "bench-c"]
  const emulator = yield* startRailwayEmulator({
    deployMs: 0,
    accountToken: tokens[0]!,
    moreAccountTokens: tokens.slice(1),
    projectCreateEveryMs: SCALED_COOLDOWN_MS
  })
  // Built in this scope: the provider's batching fibers live until the measurement ends.
  const compute = Context.get(yield* Layer.build(RailwayCompute.layer(emulator.providerOptions({
    token: Redacted.make(tokens[0]!),
    tokens: tokens.map((t) => Redacted.make(t)),
    tokenCooldown: Duration.millis(SCALED_COOLDOWN_MS),
    placement: { _tag: "project-per-instance", workspaceId: emulator.workspaceId },
    ratePerSecond: 10_000,
    ratePerHour: 1_000_000
  }))), ComputeProvider)
  const started = Date.now()
  // More creates than the tokens can serve: each needs a project of its own.
  yield* Effect.forkScoped(Effect.forEach(Array.from({ length: 60 }, (_, i) => `convos-agent-c${i}`), (name) =>
    Effect.ignore(compute.create({ name, image: "img", env: {} })), { concurrency: "unbounded", discard: true }))
  const window = SCALED_COOLDOWN_MS * WINDOW_COOLDOWNS
  yield* Effect.sleep(Duration.millis(window))
  const made = emulator.creations().filter((c) => c.kind === "project" && c.at < started + window).length
  return made / (window * (RAILWAY_COOLDOWN_MS / SCALED_COOLDOWN_MS) / 60_000)
}).pipe(Effect.scoped)

export const run = async (): Promise<Record<string, number>> => {
  const quiet = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect.pipe(Logger.withMinimumLogLevel(LogLevel.Warning)))
  return {
    "railway.placement.sharded.calls_per_pass.1000": await quiet(shardedSteadyPass),
    "railway.tokens.creates_per_minute.3tokens": await quiet(tokenThroughput)
  }
}

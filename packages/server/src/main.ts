#!/usr/bin/env node
/**
 * `warmpool serve | db:migrate | status | claim | drain | railway:check`.
 * A bad configuration stops the process at start with one line per problem.
 */
import { Command, Options } from "@effect/cli"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { printRailwayCheck, RailwayConfig, RailwayServiceVariables, webhookRegistrationConfig } from "@warmpool/providers-railway"
import { SqlClient } from "@effect/sql"
import { type ConfigError, Console, Effect, Either, Layer, Option, Redacted } from "effect"
import type { PoolSpec } from "@warmpool/reconciler"
import { computeLayer, databaseLayer, resolveApiKey, serverLayer } from "./app.js"
import { poolSpecsOf } from "./pools.js"
import { enrich } from "./enrich.js"
import { SeedInstanceStore } from "./convos/seed-table.js"
import { configErrorLines, ServerConfig, type ServerSettings } from "./config.js"
import { ObservabilityConfig, observabilityLayer } from "./observability.js"
import { SERVER_VERSION } from "./version.js"

class StartupError extends Error {
  constructor(readonly lines: ReadonlyArray<string>) {
    super(lines.join("\n"))
  }
}

/** The settings, or a StartupError listing every problem. */
const settings = ServerConfig.pipe(Effect.mapError((error) => new StartupError(configErrorLines(error))))

const serve = Command.make("serve", {}, () =>
  Effect.gen(function*() {
    const config = yield* settings
    const observability = yield* ObservabilityConfig.pipe(Effect.mapError((error) => new StartupError(configErrorLines(error))))
    const key = resolveApiKey(config)
    const specs = yield* Effect.either(poolSpecsOf(config, Either.isRight(key) ? key.right.key : Redacted.make("")))
    // Every problem at once: a missing key and a bad pool are both said.
    if (Either.isLeft(key) || Either.isLeft(specs)) {
      return yield* Effect.fail(new StartupError([...(Either.isLeft(key) ? [key.left] : []), ...(Either.isLeft(specs) ? specs.left.lines : [])]))
    }
    const { generated, key: apiKey } = key.right
    // Installed around everything the server runs, so every fiber it forks logs and traces the same way.
    return yield* Effect.gen(function*() {
      if (generated) {
        // Local mode only: printed once so the operator can use the dashboard; set POOL_API_KEY to choose one.
        yield* Console.log(`POOL_API_KEY (generated for this run, local mode): ${Redacted.value(apiKey)}`)
      }
      // With JSON logs every line is a JSON object: the banner becomes one log line too.
      yield* observability.logFormat === "json"
        ? Effect.logInfo("warmpool started").pipe(
          Effect.annotateLogs({ port: config.port, pools: specs.right.map((spec) => spec.name).join(","), provider: config.provider })
        )
        : Console.log(describe(config, specs.right))
      return yield* Layer.launch(serverLayer(config, apiKey, specs.right))
    }).pipe(Effect.provide(observabilityLayer(observability)))
  })).pipe(Command.withDescription("Run the pool manager: API, dashboard and the reconcile loop."))

/** ", autoscaling (target miss rate 1 %)" for a pool that autoscales. */
const autoscaling = (spec: PoolSpec) =>
  spec.autoscale === undefined ? "" : `, autoscaling (target miss rate ${Number((spec.autoscale.targetMissRate * 100).toPrecision(3))} %)`

const describe = (config: ServerSettings, specs: ReadonlyArray<PoolSpec>) =>
  [
    `warmpool: dashboard at http://localhost:${config.port}/ · API docs at /docs · metrics at /metrics · provider ${config.provider}`,
    ...specs.map((spec, i) =>
      `  pool "${spec.name}"${i === 0 ? " (default)" : ""}: min idle ${spec.minIdle}, max ${spec.maxTotal}, image ${spec.template.image}${autoscaling(spec)}`),
    ...(Option.isSome(config.databaseUrl) ? ["  database: DATABASE_URL"] : [])
  ].join("\n")

const migrate = Command.make("db:migrate", {}, () =>
  Effect.gen(function*() {
    const config = yield* settings
    // Connecting migrates (every start does); then say where the schema stands.
    const applied = (table: string) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ migration_id: number; name: string }>`SELECT migration_id, name FROM ${sql(table)} ORDER BY migration_id`).pipe(
        Effect.map((rows) => rows.map((m) => `${m.migration_id}_${m.name}`).join(", "))
      )
    const [store, server] = yield* Effect.all([applied("warmpool_migrations"), applied("warmpool_server_migrations")]).pipe(
      Effect.provide(databaseLayer(config))
    )
    yield* Console.log(`schema migrated: store ${store}; server ${server}`)
  })).pipe(Command.withDescription("Create or update the instances table (a seed database is migrated in place)."))

const enrichCommand = Command.make("db:enrich", {
  dryRun: Options.boolean("dry-run").pipe(Options.withDescription("show the changes, write nothing")),
  all: Options.boolean("all").pipe(Options.withDescription("re-fetch every field, not only the empty ones"))
}, ({ all, dryRun }) =>
  Effect.gen(function*() {
    const config = yield* settings
    const platform = config.provider === "railway"
      ? Layer.merge(computeLayer(config), RailwayServiceVariables.layerConfig)
      : computeLayer(config)
    const report = yield* enrich({ pool: config.pool.name, namePrefix: config.pool.namePrefix, dryRun, all }).pipe(
      Effect.provide(Layer.mergeAll(SeedInstanceStore, platform).pipe(Layer.provideMerge(databaseLayer(config))))
    )
    for (const { changes, id } of report) {
      for (const [field, change] of Object.entries(changes)) {
        // Secrets are shown by their length only.
        const shown = field === "gatewayToken" ? `<${change.to.length} characters>` : change.to
        yield* Console.log(`${id}  ${field}: ${change.from ?? "(empty)"} → ${shown}`)
      }
    }
    yield* Console.log(`${report.length} row(s) ${dryRun ? "would change (dry run)" : "enriched"}`)
  })).pipe(Command.withDescription("Fill missing url, gateway_token, agentmail_inbox_id and runtime_image from the provider."))

/** Operator commands talk to a running server, as any client would. */
const serverUrl = Options.text("url").pipe(Options.withDescription("server URL (default http://localhost:$PORT)"), Options.optional)

const poolOption = Options.text("pool").pipe(Options.withDescription("the pool (default: every pool for status, the default pool otherwise)"), Options.optional)
const poolQuery = (pool: Option.Option<string>) => Option.match(pool, { onNone: () => "", onSome: (name) => `?pool=${encodeURIComponent(name)}` })

const call = (url: Option.Option<string>, method: string, path: string, body?: unknown) =>
  Effect.gen(function*() {
    const config = yield* settings
    const base = Option.getOrElse(url, () => `http://localhost:${config.port}`)
    const headers: Record<string, string> = { "content-type": "application/json" }
    if (Option.isSome(config.apiKey)) headers.authorization = `Bearer ${Redacted.value(config.apiKey.value)}`
    const response = yield* Effect.tryPromise({
      try: () => fetch(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) }),
      catch: (error) => new StartupError([`${base}: ${error instanceof Error ? error.message : String(error)}`])
    })
    const json = yield* Effect.promise(() => response.json().catch(() => ({})))
    if (!response.ok) return yield* Effect.fail(new StartupError([`HTTP ${response.status}: ${(json as { message?: string }).message ?? "error"}`]))
    return json
  })

const status = Command.make("status", { url: serverUrl, pool: poolOption }, ({ pool, url }) =>
  Effect.flatMap(call(url, "GET", `/api/pool/status${poolQuery(pool)}`), (status) => {
    const { counts, instances, pools } = status as {
      counts: Record<string, number>
      pools?: Record<string, { counts: Record<string, number> }>
      instances: Array<{ id: string; pool?: string; status: string; agentName: string | null }>
    }
    const line = (counts: Record<string, number>) => Object.entries(counts).map(([s, n]) => `${s} ${n}`).join(" · ")
    const perPool = Object.entries(pools ?? {})
    return Console.log([
      line(counts),
      ...(perPool.length > 1 ? perPool.map(([name, p]) => `  ${name}: ${line(p.counts)}`) : []),
      ...instances.map((i) => `${i.id}  ${i.status.padEnd(9)} ${perPool.length > 1 ? `${(i.pool ?? "").padEnd(12)} ` : ""}${i.agentName ?? ""}`)
    ].join("\n"))
  })).pipe(Command.withDescription("Pool counts and instances of a running server."))

const claim = Command.make("claim", {
  url: serverUrl,
  agentName: Options.text("agent-name").pipe(Options.optional),
  instructions: Options.text("instructions").pipe(Options.optional),
  joinUrl: Options.text("join-url").pipe(Options.optional),
  waitMs: Options.integer("wait-ms").pipe(Options.optional),
  pool: poolOption
}, ({ agentName, instructions, joinUrl, pool, url, waitMs }) =>
  Effect.flatMap(
    // Every field of the body is optional: an option not given is left out (JSON drops `undefined`).
    call(url, "POST", "/api/pool/claim", {
      agentName: Option.getOrUndefined(agentName),
      instructions: Option.getOrUndefined(instructions),
      joinUrl: Option.getOrUndefined(joinUrl),
      waitMs: Option.getOrUndefined(waitMs),
      pool: Option.getOrUndefined(pool)
    }),
    (result) => Console.log(JSON.stringify(result, null, 2))
  )).pipe(Command.withDescription("Claim an idle instance (--wait-ms N: wait up to N ms for one)."))

const drain = Command.make("drain", { url: serverUrl, count: Options.integer("count"), pool: poolOption }, ({ count, pool, url }) =>
  Effect.flatMap(call(url, "POST", `/api/pool/drain${poolQuery(pool)}`, { count }), (result) => Console.log(JSON.stringify(result)))).pipe(
    Command.withDescription("Remove up to N idle instances.")
  )

const railwayCheck = Command.make("railway:check", {
  registerWebhook: Options.boolean("register-webhook").pipe(Options.withDescription("also make sure Railway sends deployment events to POOL_PUBLIC_URL"))
}, ({ registerWebhook }) =>
  Effect.gen(function*() {
    const startup = (error: string | ConfigError.ConfigError) => new StartupError(typeof error === "string" ? [error] : configErrorLines(error))
    const options = yield* RailwayConfig.pipe(Effect.mapError(startup))
    const register = registerWebhook ? yield* webhookRegistrationConfig.pipe(Effect.mapError(startup)) : undefined
    yield* printRailwayCheck(options, register)
  })).pipe(
    Command.withDescription("Check the RAILWAY_* setup: token kind, project, environment, services, rate-limit headers; --register-webhook registers the pool's webhook.")
  )

const cli = Command.make("warmpool").pipe(Command.withSubcommands([serve, migrate, enrichCommand, status, claim, drain, railwayCheck]))

// With no command (`npx @warmpool/server`), the package starts the server, as a server's package is expected to.
const argv = process.argv.length > 2 ? process.argv : [...process.argv, "serve"]

Command.run(cli, { name: "warmpool", version: SERVER_VERSION })(argv).pipe(
  Effect.catchAll((error) =>
    Effect.gen(function*() {
      const lines = error instanceof StartupError ? error.lines : [String(error)]
      for (const line of lines) yield* Console.error(line)
      return yield* Effect.sync(() => process.exit(1))
    })),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain
)

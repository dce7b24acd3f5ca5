/**
 * The pools the server keeps: `POOLS` (a JSON array) or `POOLS_FILE` (a JSON or YAML file), each entry a pool
 * with its own image, env and sizes; without either, the seed's variables make the one default pool.
 * Every problem is one line naming the pool, so a bad declaration stops the start with all of them at once.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { SqlClient } from "@effect/sql"
import { decodePoolSpec, type PoolSpec, poolSetProblems } from "@warmpool/reconciler"
import { Data, Effect, Either, Option, Redacted } from "effect"
import { parse as parseYaml } from "yaml"
import type { ServerSettings } from "./config.js"

export class PoolsConfigError extends Data.TaggedError("PoolsConfigError")<{ readonly lines: ReadonlyArray<string> }> {}

/** The environment every instance gets: the shared agent keys, the pool's own, and what the server must set. */
const instanceEnv = (settings: ServerSettings, apiKey: Redacted.Redacted<string>, own: Readonly<Record<string, string>> = {}) => ({
  ...settings.agentEnv,
  ...own,
  POOL_API_KEY: Redacted.value(apiKey),
  PORT: "8080"
})

/** POOL_AUTOSCALE and its variables, as a spec's `autoscale` (nothing when off). */
const autoscaleOf = (settings: ServerSettings) =>
  Option.match(settings.pool.autoscale, {
    onNone: () => ({}),
    onSome: ({ maxIdle, ...autoscale }) => ({
      autoscale: { ...autoscale, ...Option.match(maxIdle, { onNone: () => ({}), onSome: (n) => ({ maxIdle: n }) }) }
    })
  })

/** The one pool of the seed's variables (POOL_NAME, POOL_MIN_IDLE, RAILWAY_RUNTIME_IMAGE, …). */
export const poolSpecOf = (settings: ServerSettings, apiKey: Redacted.Redacted<string>): Either.Either<PoolSpec, ReadonlyArray<string>> =>
  decodePoolSpec({
    name: settings.pool.name,
    namePrefix: settings.pool.namePrefix,
    minIdle: settings.pool.minIdle,
    maxTotal: settings.pool.maxTotal,
    stuckTimeoutMs: settings.pool.stuckTimeoutMs,
    maxSurge: settings.pool.maxSurge,
    ...autoscaleOf(settings),
    template: { image: settings.runtimeImage, env: instanceEnv(settings, apiKey) }
  }).pipe(Either.mapLeft((lines) => lines.map((line) => `pool: ${line}`)))

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * Decodes declared pools. An entry is a pool spec with `image` and `env` at the top; what it leaves out comes
 * from the seed's variables (POOL_MIN_IDLE, POOL_MAX_TOTAL, POOL_STUCK_TIMEOUT_MS, RAILWAY_RUNTIME_IMAGE), POOL_MAX_SURGE and
 * POOL_AUTOSCALE with its variables (an entry's own `autoscale` replaces them). The
 * first pool names its services with POOL_NAME_PREFIX, the others with `convos-<name>-`.
 */
export const decodePools = (
  source: string,
  entries: unknown,
  settings: ServerSettings,
  apiKey: Redacted.Redacted<string>
): Either.Either<ReadonlyArray<PoolSpec>, ReadonlyArray<string>> => {
  if (!Array.isArray(entries) || entries.length === 0) return Either.left([`${source}: must be a non-empty array of pools`])
  const problems: Array<string> = []
  const specs: Array<PoolSpec> = []
  entries.forEach((entry, i) => {
    const label = `${source}[${i}]${isRecord(entry) && typeof entry.name === "string" ? ` (${entry.name})` : ""}`
    if (!isRecord(entry)) return problems.push(`${label}: must be an object`)
    const { env, image, ...rest } = entry
    if (env !== undefined && !isRecord(env)) problems.push(`${label}: env must be an object of strings`)
    // A bad name is said once, as a bad name: it makes no default prefix to complain about as well.
    const prefix = i === 0 ? settings.pool.namePrefix : typeof entry.name === "string" && /^[a-z0-9-]+$/.test(entry.name) ? `convos-${entry.name}-` : undefined
    const decoded = decodePoolSpec({
      minIdle: settings.pool.minIdle,
      maxTotal: settings.pool.maxTotal,
      stuckTimeoutMs: settings.pool.stuckTimeoutMs,
      maxSurge: settings.pool.maxSurge,
      ...autoscaleOf(settings),
      ...(prefix === undefined ? {} : { namePrefix: prefix }),
      ...rest,
      template: { image: image ?? settings.runtimeImage, env: instanceEnv(settings, apiKey, isRecord(env) ? env as Record<string, string> : {}) }
    })
    Either.match(decoded, {
      onLeft: (lines) => problems.push(...lines.map((line) => `${label}: ${line.replace(/^template\./, "")}`)),
      onRight: (spec) => specs.push(spec)
    })
  })
  problems.push(...(problems.length === 0 ? poolSetProblems(specs).map((line) => `${source}: ${line}`) : []))
  return problems.length > 0 ? Either.left(problems) : Either.right(specs)
}

const parseWith = (source: string, text: string, parse: (text: string) => unknown) =>
  Either.try({ try: () => parse(text), catch: (error) => [`${source}: cannot be parsed: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`] })

/** The pools to keep: POOLS, POOLS_FILE, or the seed's one pool. */
export const poolSpecsOf = (settings: ServerSettings, apiKey: Redacted.Redacted<string>) =>
  Effect.gen(function*() {
    const fail = (lines: ReadonlyArray<string>) => Effect.fail(new PoolsConfigError({ lines }))
    const { json, file } = settings.pools
    if (Option.isSome(json) && Option.isSome(file)) return yield* fail(["POOLS and POOLS_FILE: set one of them, not both"])
    let declared: Either.Either<unknown, ReadonlyArray<string>>
    let source: string
    if (Option.isSome(json)) {
      source = "POOLS"
      declared = parseWith(source, json.value, JSON.parse)
    } else if (Option.isSome(file)) {
      source = "POOLS_FILE"
      const fs = yield* FileSystem.FileSystem
      const text = yield* fs.readFileString(file.value).pipe(
        Effect.mapError((error) => new PoolsConfigError({ lines: [`POOLS_FILE: cannot read ${file.value}: ${error.message}`] }))
      )
      // YAML is a superset of JSON: one parser reads both.
      declared = parseWith(source, text, parseYaml)
    } else {
      return yield* Either.match(poolSpecOf(settings, apiKey), { onLeft: fail, onRight: (spec) => Effect.succeed([spec]) })
    }
    const specs = Either.flatMap(declared, (entries) => decodePools(source, entries, settings, apiKey))
    return yield* Either.match(specs, { onLeft: fail, onRight: Effect.succeed })
  })

/**
 * Moving from one pool to declared pools keeps the running instances: when POOL_NAME's pool is not declared and
 * the first declared pool names its services as that pool did (same prefix), its rows become the first pool's.
 * Otherwise they would sit in a pool nobody reconciles, while the first pool found their services unowned.
 */
export const carryOverSeedPool = (settings: ServerSettings, specs: ReadonlyArray<PoolSpec>) =>
  Effect.gen(function*() {
    const first = specs[0]
    const seed = settings.pool.name
    if (first === undefined || specs.some((s) => s.name === seed) || first.namePrefix !== settings.pool.namePrefix) return 0
    const sql = yield* SqlClient.SqlClient
    const moved = yield* sql`UPDATE instances SET pool = ${first.name} WHERE pool = ${seed} RETURNING id`
    if (moved.length > 0) {
      yield* Effect.logInfo(`${moved.length} instance(s) of pool "${seed}" (POOL_NAME) now belong to "${first.name}", the first declared pool`)
    }
    return moved.length
  })

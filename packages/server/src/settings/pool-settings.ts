/**
 * Pool settings changed while the server runs, kept in the replaced system's `pool_settings` table (key, value,
 * updated_at). Its one key, `target_idle` ("0"–"50"), is the default pool's minimum idle; warmpool adds a key per
 * pool (`pool:<name>`, JSON) for what `PUT /api/pool/pools/:name` changes: minIdle, maxTotal, image and env.
 *
 * Every replica applies the table: the one that wrote it at once, the others at their next look (every
 * `pollInterval`), so the leader of each pool, wherever it runs, plans with the same spec. A restart starts
 * from the table, not from the declared values. A change is validated as `POOLS` entries are; a bad one is
 * refused whole, nothing written.
 */
import { SqlClient, SqlError } from "@effect/sql"
import { type ControllerOptions, decodePoolSpec, PoolSpec, Pools, StoreError } from "@warmpool/reconciler"
import { PgLeadership } from "@warmpool/reconciler-pg"
import { Context, Data, Duration, Effect, Either, Layer, Option, Schedule, Schema } from "effect"

export const createPoolSettings = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql`
    CREATE TABLE IF NOT EXISTS pool_settings (
      key TEXT PRIMARY KEY,
      value TEXT NOT NULL,
      updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )`)

/** The seed's key: the default pool's minimum idle, a whole number from 0 to 50 as a string. */
export const TARGET_IDLE = "target_idle"
const TARGET_IDLE_MAX = 50
const poolKey = (name: string) => `pool:${name}`

/** What an operator may change of a running pool. Absent: as declared. */
const PoolOverride = Schema.Struct({
  minIdle: Schema.optional(Schema.Number),
  maxTotal: Schema.optional(Schema.Number),
  image: Schema.optional(Schema.String),
  env: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
})
type PoolOverride = typeof PoolOverride.Type
const decodeOverride = Schema.decodeUnknownOption(Schema.parseJson(PoolOverride))
const editableFields = ["minIdle", "maxTotal", "image", "env"] as const

/** Variables the server sets in every instance; an override cannot replace them. */
const RESERVED_ENV = ["POOL_API_KEY", "PORT"]

/** The seed settings' answer was refused: the settings as they stay, and why (the replaced system's 400 body). */
export class SettingsRejected extends Data.TaggedError("SettingsRejected")<{
  readonly settings: Readonly<Record<string, string>>
  readonly errors: ReadonlyArray<string>
}> {}

/** A pool's change was refused; nothing was written. */
export class PoolChangeRejected extends Data.TaggedError("PoolChangeRejected")<{ readonly errors: ReadonlyArray<string> }> {}

/** No pool of that name. */
export class UnknownPool extends Data.TaggedError("UnknownPool")<{ readonly message: string }> {}

type Table = ReadonlyMap<string, string>

const storeError = (operation: string) => (error: SqlError.SqlError) =>
  new StoreError({ operation, message: error.message, retryable: true })

/** The spec `declared` becomes with the table's overrides, or the problems, one line each. */
const effectiveSpec = (declared: PoolSpec, isDefault: boolean, table: Table): Either.Either<PoolSpec, ReadonlyArray<string>> => {
  const override: PoolOverride = Option.getOrElse(decodeOverride(table.get(poolKey(declared.name)) ?? "{}"), () => ({}))
  const targetIdle = isDefault ? table.get(TARGET_IDLE) : undefined
  const encoded = Schema.encodeSync(PoolSpec)(declared)
  return decodePoolSpec({
    ...encoded,
    minIdle: targetIdle !== undefined ? Number(targetIdle) : override.minIdle ?? declared.minIdle,
    maxTotal: override.maxTotal ?? declared.maxTotal,
    template: { image: override.image ?? declared.template.image, env: { ...declared.template.env, ...override.env } }
  })
}

/** The seed's settings: `target_idle` (the default pool's minimum idle, as a string). */
const seedView = (pools: Pools["Type"]): Record<string, string> => ({ [TARGET_IDLE]: String(pools.all[0]!.spec.minIdle) })

/** `{"target_idle": "5"}`: the lines that are wrong, none when it may be written. */
const seedProblems = (body: unknown): ReadonlyArray<string> => {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return ["the body must be a JSON object of settings, e.g. {\"target_idle\": \"5\"}"]
  return Object.entries(body).flatMap(([key, value]) => {
    if (key !== TARGET_IDLE) return [`unknown setting: ${key} (known: ${TARGET_IDLE})`]
    // The replaced system skipped values that are not strings and read "5abc" as 5: both are refused here.
    if (typeof value !== "string") return [`invalid value for ${key}: must be a string of a whole number from 0 to ${TARGET_IDLE_MAX}, e.g. "5"`]
    if (!/^\d+$/.test(value) || Number(value) > TARGET_IDLE_MAX) return [`invalid value for ${key}: ${value} (a whole number from 0 to ${TARGET_IDLE_MAX})`]
    return []
  })
}

/** A pool's change: the override it makes over the previous one, or the lines that are wrong. */
const poolChange = (previous: PoolOverride, body: unknown): Either.Either<Record<string, unknown>, ReadonlyArray<string>> => {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return Either.left([`the body must be a JSON object with any of ${editableFields.join(", ")}`])
  }
  const problems: Array<string> = []
  const next: Record<string, unknown> = { ...previous }
  for (const [key, value] of Object.entries(body)) {
    if (!(editableFields as ReadonlyArray<string>).includes(key)) {
      problems.push(`${key}: cannot change while the pool runs (only ${editableFields.join(", ")})`)
    } else if (value === null) delete next[key] // back to the declared value
    else if (key === "env") {
      if (typeof value !== "object" || Array.isArray(value) || Object.values(value).some((v) => typeof v !== "string")) {
        problems.push("env must be an object of strings")
      } else {
        const reserved = Object.keys(value).filter((k) => RESERVED_ENV.includes(k))
        if (reserved.length > 0) problems.push(`env: ${reserved.join(", ")} ${reserved.length > 1 ? "are" : "is"} set by the server`)
        next.env = value
      }
    } else next[key] = value
  }
  return problems.length > 0 ? Either.left(problems) : Either.right(next)
}

export interface PoolSettingsOptions {
  /** How often a replica looks for changes made on another one. Default 2 s. */
  readonly pollInterval?: Duration.DurationInput
}

/** The settings of the running pools: read, changed, and applied live on every replica. */
export class PoolSettings extends Context.Tag("@warmpool/server/PoolSettings")<
  PoolSettings,
  {
    /** `{"target_idle": "3"}`: the seed's settings as they are now. */
    readonly seed: Effect.Effect<Record<string, string>>
    /** Changes the seed's settings (all or none) and applies them; the settings after. */
    readonly putSeed: (body: unknown) => Effect.Effect<Record<string, string>, SettingsRejected | StoreError>
    /** Changes a pool's minIdle, maxTotal, image or env (`null`: back to the declared value) and applies it. */
    readonly putPool: (name: string, body: unknown) => Effect.Effect<PoolSpec, PoolChangeRejected | UnknownPool | StoreError>
  }
>() {
  /**
   * The declared specs with the table's changes over them: what the controllers start from, so that a restart
   * plans with the changed values from its first pass. A stored change the declaration no longer allows (a
   * lower POOL_MAX_TOTAL) is set aside with a warning.
   */
  static readonly effectiveSpecs = (declared: ReadonlyArray<PoolSpec>) =>
    Effect.gen(function*() {
      const table = yield* Effect.flatMap(SqlClient.SqlClient, readTable)
      return yield* Effect.forEach(declared, (spec, i) =>
        Either.match(effectiveSpec(spec, i === 0, table), {
          onRight: Effect.succeed,
          onLeft: (lines) => Effect.as(Effect.logWarning(`pool ${spec.name}: stored settings set aside (${lines.join("; ")})`), spec)
        }))
    })

  /** Over the `Pools` in context, whose declared specs are `declared` (in the same order). */
  static readonly layer = (declared: ReadonlyArray<PoolSpec>, options: PoolSettingsOptions = {}) =>
    Layer.scoped(
      PoolSettings,
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const pools = yield* Pools
        const read = readTable(sql)

        /** Brings every controller to the table's specs; one whose stored change is invalid keeps its spec. */
        const apply = (table: Table) =>
          Effect.forEach(pools.all, (controller, i) => {
            const wanted = effectiveSpec(declared[i]!, i === 0, table)
            if (Either.isLeft(wanted)) return Effect.logWarning(`pool ${controller.spec.name}: stored settings not applied (${wanted.left.join("; ")})`)
            const change = describeChange(controller.spec, wanted.right)
            if (change === undefined) return Effect.void
            return controller.updateSpec(wanted.right).pipe(
              Effect.zipRight(Effect.logInfo(`pool ${controller.spec.name}: settings changed (${change})`)),
              Effect.catchAll((error) => Effect.logWarning(error.message))
            )
          }, { discard: true })

        const refresh = read.pipe(Effect.flatMap(apply))
        // Changes made on other replicas; a failed look is tried again at the next one.
        yield* refresh.pipe(
          Effect.catchAll((error) => Effect.logWarning(`pool settings could not be read: ${error.message}`)),
          Effect.repeat(Schedule.spaced(options.pollInterval ?? Duration.seconds(2))),
          Effect.forkScoped
        )

        /** Writes run one at a time across replicas: each validates against what the one before wrote. */
        const exclusively = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
          sql`SELECT pg_advisory_xact_lock(hashtext('pool_settings'))`.pipe(
            Effect.zipRight(effect),
            sql.withTransaction,
            Effect.mapError((error): Exclude<E, SqlError.SqlError> | StoreError =>
              error instanceof SqlError.SqlError ? storeError("settings.write")(error) : error as Exclude<E, SqlError.SqlError>)
          )
        const write = (key: string, value: string) =>
          sql`INSERT INTO pool_settings (key, value) VALUES (${key}, ${value})
              ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`

        const putSeed = (body: unknown) =>
          exclusively(Effect.gen(function*() {
            const table = yield* read
            const problems = [...seedProblems(body)]
            const next = new Map(table)
            if (problems.length === 0) {
              for (const [key, value] of Object.entries(body as Record<string, string>)) next.set(key, String(Number(value)))
              const checked = effectiveSpec(declared[0]!, true, next)
              if (Either.isLeft(checked)) problems.push(...checked.left.map((line) => `invalid value for ${TARGET_IDLE}: ${line}`))
            }
            if (problems.length > 0) return yield* new SettingsRejected({ settings: seedView(pools), errors: problems })
            for (const [key, value] of next) if (table.get(key) !== value) yield* write(key, value)
            return next
          })).pipe(Effect.flatMap(apply), Effect.map(() => seedView(pools)))

        const putPool = (name: string, body: unknown) =>
          Effect.gen(function*() {
            const index = pools.all.findIndex((c) => c.spec.name === name)
            if (index < 0) return yield* new UnknownPool({ message: `unknown pool "${name}"; known pools: ${pools.all.map((c) => c.spec.name).join(", ")}` })
            const table = yield* exclusively(Effect.gen(function*() {
              const table = yield* read
              const previous = Option.getOrElse(decodeOverride(table.get(poolKey(name)) ?? "{}"), () => ({}))
              const next = yield* Either.match(poolChange(previous, body), {
                onLeft: (errors) => Effect.fail(new PoolChangeRejected({ errors })),
                onRight: Effect.succeed
              })
              const updated = new Map(table)
              // The default pool's minimum idle is the seed's `target_idle`: one value, wherever it is set.
              if (index === 0 && "minIdle" in next) {
                const minIdle = next.minIdle
                delete next.minIdle
                if (typeof minIdle === "number") updated.set(TARGET_IDLE, String(minIdle))
              }
              if (index === 0 && body !== null && typeof body === "object" && (body as Record<string, unknown>).minIdle === null) updated.delete(TARGET_IDLE)
              updated.set(poolKey(name), JSON.stringify(next))
              const checked = effectiveSpec(declared[index]!, index === 0, updated)
              if (Either.isLeft(checked)) return yield* new PoolChangeRejected({ errors: checked.left })
              for (const [key, value] of updated) if (table.get(key) !== value) yield* write(key, value)
              if (!updated.has(TARGET_IDLE) && table.has(TARGET_IDLE)) yield* sql`DELETE FROM pool_settings WHERE key = ${TARGET_IDLE}`
              return updated
            }))
            yield* apply(table)
            return pools.all[index]!.spec
          })

        return { seed: Effect.sync(() => seedView(pools)), putSeed, putPool }
      })
    )
}

/**
 * The declared pools, each with a Postgres lease named after it, started from the stored settings; and the
 * `PoolSettings` that change them live. What the server runs; tests run it too.
 */
export const settledPoolsLayer = (declared: ReadonlyArray<PoolSpec>, options: ControllerOptions & PoolSettingsOptions = {}) =>
  PoolSettings.layer(declared, options).pipe(
    Layer.provideMerge(Layer.unwrapEffect(Effect.map(PoolSettings.effectiveSpecs(declared).pipe(Effect.orDie), (effective) =>
      Pools.layerWith(effective, (spec) => PgLeadership.make({ name: spec.name }), options))))
  )

const readTable = (sql: SqlClient.SqlClient) => sql<{ key: string; value: string }>`SELECT key, value FROM pool_settings`.pipe(
  Effect.map((rows): Table => new Map(rows.map((row) => [row.key, row.value]))),
  Effect.mapError(storeError("settings.read"))
)

/** What differs between two specs of a pool, in words (env by its keys: values may be secrets); none when nothing. */
const describeChange = (from: PoolSpec, to: PoolSpec): string | undefined => {
  const changes: Array<string> = []
  if (from.minIdle !== to.minIdle) changes.push(`minIdle ${from.minIdle} → ${to.minIdle}`)
  if (from.maxTotal !== to.maxTotal) changes.push(`maxTotal ${from.maxTotal} → ${to.maxTotal}`)
  if (from.template.image !== to.template.image) changes.push(`image ${from.template.image} → ${to.template.image}`)
  const keys = new Set([...Object.keys(from.template.env), ...Object.keys(to.template.env)])
  const envChanged = [...keys].filter((k) => from.template.env[k] !== to.template.env[k])
  if (envChanged.length > 0) changes.push(`env ${envChanged.join(", ")}`)
  return changes.length === 0 ? undefined : changes.join(", ")
}

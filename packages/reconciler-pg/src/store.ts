/**
 * `InstanceStore` on Postgres. Every status change is a compare-and-set on the expected status,
 * claims are one `FOR UPDATE SKIP LOCKED` statement, a pass reads a pool in one query and writes
 * its status changes in one. Writes made under a leader's fence land only while its lease holds.
 */
import { SqlClient, type SqlError, type Statement } from "@effect/sql"
import { Effect, FiberRef, Layer, Option, Ref } from "effect"
import { Instance, type InstancePatch, instanceStatuses, type InstanceStatus, countByStatus, newestFirst, type StringMap, ConflictError, StaleStatusError, StoreError, InstanceStore, type Transition, withSpanWhenExported } from "@warmpool/reconciler"
import { CurrentFence, fenceHolds } from "./fence.js"

/**
 * Where the keys of a row's maps live. Each key named here has a TEXT column of its own (`key → column`), e.g. so
 * that a table another program reads keeps its columns; every other key lives in the map's JSONB column.
 */
export interface StoreColumns {
  readonly handles?: Readonly<Record<string, string>>
  readonly attributes?: Readonly<Record<string, string>>
}

/** Columns a patch may set besides the maps, camelCase → snake_case, with their SQL types. */
const scalarColumns = {
  serviceId: ["service_id", "text"],
  name: ["name", "text"],
  url: ["url", "text"],
  deployStatus: ["deploy_status", "text"],
  claimedAt: ["claimed_at", "timestamptz"],
  runtimeImage: ["runtime_image", "text"],
  templateHash: ["template_hash", "text"],
  failures: ["failures", "int"],
  lastError: ["last_error", "text"],
  intentBy: ["intent_by", "text"]
} as const satisfies Record<Exclude<keyof InstancePatch, "handles" | "attributes">, readonly [string, string]>

type MapName = "handles" | "attributes"
const mapNames: ReadonlyArray<MapName> = ["handles", "attributes"]

/** One column a write sets: a value, or (`merge`) a JSON object merged into a map's JSONB column. */
interface Assignment {
  readonly column: string
  readonly type: "text" | "timestamptz" | "int" | "jsonb"
  readonly merge: boolean
  readonly value: string | number | Date | null
}

type Row = Record<string, unknown>

/** A change of a batch, with the columns it sets. */
interface Planned {
  readonly change: Transition
  readonly sets: ReadonlyArray<Assignment>
}

const known = new Set<string>(instanceStatuses)
/** Read as epoch milliseconds: a number is parsed far more cheaply than a timestamp's text, and a pass reads every row. */
const timestampColumns = new Set(["created_at", "status_changed_at", "claimed_at"])
/** The store's own columns, the maps' aside. */
const rowColumns = ["id", "pool", "status", "created_at", "status_changed_at", ...Object.values(scalarColumns).map(([c]) => c)]
const coreColumns = new Set([...rowColumns, ...mapNames])
/** The map of every row that has nothing in it: one object, never written to. */
const EMPTY: StringMap = Object.freeze({})

const str = (v: unknown) => (v === null || v === undefined ? null : String(v))
const date = (v: unknown) =>
  v instanceof Date ? v : typeof v === "number" ? new Date(v) : v === null || v === undefined ? null : new Date(String(v))
/** A JSONB map as the driver gives it: parsed already (a fresh object per row, ours to fill), or text. */
const jsonMap = (v: unknown): Record<string, string> =>
  typeof v === "string" ? JSON.parse(v) : typeof v === "object" && v !== null ? v as Record<string, string> : {}

/** Checks a column map once, at start: a typo here would otherwise fail on the first write. */
const checkColumns = (columns: StoreColumns): ReadonlyArray<string> =>
  mapNames.flatMap((map) =>
    Object.entries(columns[map] ?? {}).flatMap(([key, column]) =>
      !/^[a-z_][a-z0-9_]*$/.test(column)
        ? [`${map}.${key}: "${column}" is not a plain lower-case column name`]
        : coreColumns.has(column)
        ? [`${map}.${key}: "${column}" is one of the store's own columns`]
        : []
    )
  )

const makeCodec = (columns: StoreColumns) => {
  const named: Record<MapName, ReadonlyArray<readonly [string, string]>> = {
    handles: Object.entries(columns.handles ?? {}),
    attributes: Object.entries(columns.attributes ?? {})
  }

  /**
   * What a read selects: the store's columns and the named keys' columns; an empty map comes back NULL, so that
   * the many rows with nothing in it cost no JSON parse and no object of their own.
   */
  const read = (column: string) =>
    timestampColumns.has(column) ? `(extract(epoch FROM ${column}) * 1000)::float8 AS ${column}` : column
  const selected = [
    ...[...new Set([...rowColumns, ...named.handles.map(([, c]) => c), ...named.attributes.map(([, c]) => c)])].map(read),
    ...mapNames.map((map) => `NULLIF(${map}, '{}'::jsonb) AS ${map}`)
  ].join(", ")

  /** A map of the row: its JSON, with the named keys' columns over it (a pass reads every row: no copies). */
  const mapOf = (r: Row, map: MapName): StringMap => {
    let merged: Record<string, string> | undefined = r[map] === null ? undefined : jsonMap(r[map])
    for (const [key, column] of named[map]) {
      const value = r[column]
      if (value !== null && value !== undefined) (merged ??= {})[key] = String(value)
    }
    return merged ?? EMPTY
  }

  const toInstance = (r: Row): Instance => {
    // Trusted: the table's column types already hold what the schema would check.
    return Instance.trusted({
      id: String(r.id),
      pool: String(r.pool),
      serviceId: str(r.service_id),
      name: String(r.name),
      url: str(r.url),
      status: r.status as InstanceStatus,
      deployStatus: str(r.deploy_status),
      createdAt: date(r.created_at)!,
      claimedAt: date(r.claimed_at),
      runtimeImage: str(r.runtime_image),
      templateHash: str(r.template_hash),
      handles: mapOf(r, "handles"),
      attributes: mapOf(r, "attributes"),
      statusChangedAt: date(r.status_changed_at)!,
      failures: Number(r.failures ?? 0),
      lastError: str(r.last_error),
      intentBy: str(r.intent_by)
    })
  }

  /**
   * The columns a map's keys go to: each named key its column, the others one JSON object, which an update merges
   * into the map's column (`merge`) and an insert writes whole (an empty object included).
   */
  const mapAssignments = (map: MapName, given: StringMap, merge: boolean): ReadonlyArray<Assignment> => {
    const out: Array<Assignment> = []
    const rest: Record<string, string> = { ...given }
    for (const [key, column] of named[map]) {
      if (key in rest) {
        out.push({ column, type: "text", merge: false, value: rest[key]! })
        delete rest[key]
      }
    }
    if (!merge || Object.keys(rest).length > 0) out.push({ column: map, type: "jsonb", merge, value: JSON.stringify(rest) })
    return out
  }

  /** The columns a patch sets besides the status, in a stable order (batched writes group changes by them). */
  const assignments = (patch: InstancePatch | undefined): ReadonlyArray<Assignment> => {
    const out: Array<Assignment> = []
    for (const [key, value] of Object.entries(patch ?? {})) {
      if (value === undefined || key === "handles" || key === "attributes") continue
      const [column, type] = scalarColumns[key as keyof typeof scalarColumns]
      out.push({ column, type, merge: false, value: value as Assignment["value"] })
    }
    for (const map of mapNames) {
      const given = patch?.[map]
      if (given !== undefined) out.push(...mapAssignments(map, given, true))
    }
    return out.sort((a, b) => a.column.localeCompare(b.column))
  }

  /** A new row's columns and values. */
  const insertValues = (row: Instance): ReadonlyArray<Assignment> => {
    const { attributes, handles, id, pool, status, createdAt, statusChangedAt, ...scalars } = row
    return [
      { column: "id", type: "text", merge: false, value: id },
      { column: "pool", type: "text", merge: false, value: pool },
      { column: "status", type: "text", merge: false, value: status },
      { column: "created_at", type: "timestamptz", merge: false, value: createdAt },
      { column: "status_changed_at", type: "timestamptz", merge: false, value: statusChangedAt },
      ...assignments(scalars),
      ...mapAssignments("handles", handles, false),
      ...mapAssignments("attributes", attributes, false)
    ]
  }

  return { selected, toInstance, assignments, insertValues }
}

const storeError = (operation: string) => (error: SqlError.SqlError) =>
  new StoreError({
    operation,
    message: `${error.message}${error.cause instanceof Error ? `: ${error.cause.message}` : ""}`,
    // A statement the database refused (syntax, constraint) will be refused again; anything else may pass.
    retryable: !/^(22|23|42)/.test(pgCode(error) ?? "")
  })

const pgCode = (error: SqlError.SqlError): string | undefined =>
  typeof error.cause === "object" && error.cause !== null && "code" in error.cause ? String(error.cause.code) : undefined

export const make = (columns: StoreColumns = {}) => Effect.gen(function*() {
  const problems = checkColumns(columns)
  if (problems.length > 0) return yield* Effect.dieMessage(`PgInstanceStore columns:\n${problems.join("\n")}`)
  const { assignments, insertValues, selected, toInstance } = makeCodec(columns)
  const sql = yield* SqlClient.SqlClient
  // A pass reads every row of a pool: those reads ask for cheaply parsed columns (names checked above, expressions
  // ours). A statement about one row (a claim, a transition) asks for `*`: the expressions would cost the
  // database more than the parsing they save.
  const columnsRead = sql.literal(selected)
  const reported = yield* Ref.make(new Set<string>())

  /** The fence condition of the current fiber: true outside a leader's pass. */
  const fence = Effect.map(FiberRef.get(CurrentFence), Option.match({ onNone: () => sql`TRUE`, onSome: (f) => fenceHolds(sql, f) }))

  const setClause = (to: InstanceStatus, patch: InstancePatch | undefined) => {
    const sets = [sql`status = ${to}`, sql`status_changed_at = CASE WHEN status = ${to} THEN status_changed_at ELSE now() END`]
    for (const a of assignments(patch)) {
      sets.push(
        a.merge
          ? sql`${sql(a.column)} = ${sql(a.column)} || ${a.value}::jsonb`
          : sql`${sql(a.column)} = ${a.value}::${sql.literal(a.type)}`
      )
    }
    return sql.csv(sets)
  }

  /** Rows with a status this version does not know are left alone, and said once. */
  const keepKnown = (rows: ReadonlyArray<Row>) =>
    Effect.gen(function*() {
      const unknown = rows.filter((r) => !known.has(String(r.status)))
      if (unknown.length > 0) {
        const fresh = yield* Ref.modify(reported, (seen) => {
          const news = unknown.filter((r) => !seen.has(`${r.id}:${r.status}`))
          const next = new Set(seen)
          for (const r of news) next.add(`${r.id}:${r.status}`)
          return [news, next] as const
        })
        if (fresh.length > 0) {
          yield* Effect.logWarning(
            `left alone: rows with a status this version does not know: ${fresh.map((r) => `${r.id} (${String(r.status)})`).join(", ")}`
          )
        }
      }
      return rows.filter((r) => known.has(String(r.status))).map(toInstance)
    })

  const store: InstanceStore["Type"] = {
    list: (pool) =>
      sql<Row>`SELECT ${columnsRead} FROM instances WHERE pool = ${pool} ORDER BY created_at, id`.pipe(
        Effect.mapError(storeError("store.list")),
        Effect.flatMap(keepKnown),
        Effect.withSpan("PgInstanceStore.list")
      ),
    get: (id) =>
      sql<Row>`SELECT * FROM instances WHERE id = ${id}`.pipe(
        Effect.mapError(storeError("store.get")),
        Effect.flatMap(keepKnown),
        Effect.map((rows) => Option.fromNullable(rows[0]))
      ),
    insert: (row) =>
      Effect.gen(function*() {
        const guard = yield* fence
        const values = insertValues(row)
        const inserted = yield* sql<Row>`
          INSERT INTO instances (${sql.csv(values.map((v) => sql`${sql(v.column)}`))})
          SELECT ${sql.csv(values.map((v) => sql`${v.value}::${sql.literal(v.type)}`))}
          WHERE ${guard}
          RETURNING id`.pipe(
          Effect.catchAll((error): Effect.Effect<never, StoreError | ConflictError> =>
            pgCode(error) === "23505"
              ? Effect.fail(new ConflictError({ operation: "store.insert", message: `row ${row.id} clashes with an existing row (same id, name or service id)` }))
              : Effect.fail(storeError("store.insert")(error))
          )
        )
        if (inserted.length === 0) {
          return yield* new StoreError({ operation: "store.insert", message: "not written: this replica no longer holds the lease", retryable: false })
        }
      }).pipe(Effect.withSpan("PgInstanceStore.insert")),
    transition: (change) =>
      Effect.gen(function*() {
        const guard = yield* fence
        const rows = yield* sql<Row>`
          UPDATE instances SET ${setClause(change.to, change.patch)}
          WHERE id = ${change.id} AND status IN ${sql.in(change.from)} AND ${guard}
          RETURNING *`.pipe(Effect.mapError(storeError("store.transition")))
        if (rows.length === 0) {
          return yield* new StaleStatusError({ id: change.id, expected: [...change.from], message: `row ${change.id} is not ${change.from.join("|")}` })
        }
        return toInstance(rows[0]!)
      }).pipe(withSpanWhenExported("PgInstanceStore.transition")),
    transitionMany: (changes) =>
      changes.length === 0
        ? Effect.succeed([])
        : Effect.gen(function*() {
          const guard = yield* fence
          // One statement per distinct (to, from, columns set) shape: a pass's changes share few shapes.
          const groups = new Map<string, Array<Planned>>()
          for (const change of changes) {
            const sets = assignments(change.patch)
            const key = JSON.stringify([change.to, change.from, sets.map((a) => a.column)])
            const group = groups.get(key)
            if (group === undefined) groups.set(key, [{ change, sets }])
            else group.push({ change, sets })
          }
          const applied = yield* Effect.forEach([...groups.values()], (group) => applyGroup(group, guard))
          return applied.flat()
        }).pipe(Effect.withSpan("PgInstanceStore.transitionMany")),
    claimIdle: (pool, count = 1, claimer = null, exclude = []) =>
      sql<Row>`
        UPDATE instances SET status = 'claiming', status_changed_at = now(), intent_by = ${claimer}
        WHERE id IN (
          SELECT id FROM instances WHERE status = 'idle' AND pool = ${pool}
          AND NOT (id = ANY(${exclude}::text[]))
          ORDER BY created_at DESC, id LIMIT ${count} FOR UPDATE SKIP LOCKED
        )
        RETURNING *`.pipe(
        Effect.mapError(storeError("store.claimIdle")),
        // RETURNING keeps no order: newest first, as the caller was promised.
        Effect.map((rows) => rows.map(toInstance).sort(newestFirst)),
        withSpanWhenExported("PgInstanceStore.claimIdle")
      ),
    remove: (id, from) =>
      Effect.gen(function*() {
        const guard = yield* fence
        const rows = yield* sql`DELETE FROM instances WHERE id = ${id} AND status IN ${sql.in(from)} AND ${guard} RETURNING id`.pipe(
          Effect.mapError(storeError("store.remove"))
        )
        return rows.length > 0
      }),
    counts: (pool) =>
      sql<{ status: string; n: number }>`SELECT status, count(*)::int AS n FROM instances WHERE pool = ${pool} GROUP BY status`.pipe(
        Effect.mapError(storeError("store.counts")),
        Effect.map((rows) => {
          const counts = countByStatus([])
          return { ...counts, ...Object.fromEntries(rows.filter((r) => known.has(r.status)).map((r) => [r.status, r.n])) }
        })
      )
  }

  /** Many compare-and-sets of one shape in one statement: `UPDATE … FROM unnest(…)`. */
  const applyGroup = (group: ReadonlyArray<Planned>, guard: Statement.Fragment) => {
    const { from, to } = group[0]!.change
    const ids = group.map((c) => c.change.id)
    const columns = group[0]!.sets.map((a, index) => ({
      ...a,
      values: group.map(({ sets }) => {
        const value = sets[index]!.value
        return value instanceof Date ? value.toISOString() : value === null ? null : String(value)
      })
    }))
    const sets = [sql`status = ${to}`, sql`status_changed_at = CASE WHEN i.status = ${to} THEN i.status_changed_at ELSE now() END`]
    for (const c of columns) {
      sets.push(
        c.merge
          ? sql`${sql(c.column)} = i.${sql(c.column)} || (v.${sql(c.column)})::jsonb`
          : sql`${sql(c.column)} = (v.${sql(c.column)})::${sql.literal(c.type)}`
      )
    }
    const arrays = [sql`${ids}::text[]`, ...columns.map((c) => sql`${c.values}::text[]`)]
    const names = [sql.literal("id"), ...columns.map((c) => sql.literal(c.column))]
    return sql<{ id: string }>`
      UPDATE instances AS i SET ${sql.csv(sets)}
      FROM unnest(${sql.csv(arrays)}) AS v(${sql.csv(names)})
      WHERE i.id = v.id AND i.status IN ${sql.in(from)} AND ${guard}
      RETURNING i.id`.pipe(
      Effect.mapError(storeError("store.transitionMany")),
      Effect.map((rows) => rows.map((r) => r.id))
    )
  }

  return store
})

/** `InstanceStore` on the `SqlClient` in context (e.g. `PgClient.layer`). Run `runMigrations` first. */
export const PgInstanceStore = {
  /** Every map key in the maps' JSONB columns. */
  layer: Layer.effect(InstanceStore, make()),
  /** Some map keys in columns of their own (which must exist: add them with migrations of your own). */
  layerWithColumns: (columns: StoreColumns) => Layer.effect(InstanceStore, make(columns))
}

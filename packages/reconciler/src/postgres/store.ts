/**
 * `InstanceStore` on Postgres. Every status change is a compare-and-set on the expected status,
 * claims are one `FOR UPDATE SKIP LOCKED` statement, a pass reads a pool in one query and writes
 * its status changes in one. Writes made under a leader's fence land only while its lease holds.
 */
import { SqlClient, type SqlError, type Statement } from "@effect/sql"
import { Effect, FiberRef, Layer, Option, Ref } from "effect"
import { Instance, type InstancePatch, instanceStatuses, type InstanceStatus, countByStatus, oldestFirst } from "../domain/instance.js"
import { ConflictError, StaleStatusError, StoreError } from "../errors.js"
import { InstanceStore, type Transition } from "../services.js"
import { CurrentFence, fenceHolds } from "./fence.js"

/** Columns a patch may set, camelCase → snake_case. */
const patchColumns = {
  serviceId: "service_id",
  name: "name",
  url: "url",
  deployStatus: "deploy_status",
  agentName: "agent_name",
  conversationId: "conversation_id",
  inviteUrl: "invite_url",
  instructions: "instructions",
  claimedAt: "claimed_at",
  sourceBranch: "source_branch",
  runtimeImage: "runtime_image",
  templateHash: "template_hash",
  openrouterKeyHash: "openrouter_key_hash",
  agentmailInboxId: "agentmail_inbox_id",
  gatewayToken: "gateway_token",
  failures: "failures",
  lastError: "last_error",
  intentBy: "intent_by"
} as const satisfies Record<keyof InstancePatch, string>

type Row = Record<string, unknown>

const known = new Set<string>(instanceStatuses)

const str = (v: unknown) => (v === null || v === undefined ? null : String(v))
const date = (v: unknown) => (v instanceof Date ? v : v === null || v === undefined ? null : new Date(String(v)))

const toInstance = (r: Row): Instance =>
  new Instance({
    id: String(r.id),
    pool: String(r.pool),
    serviceId: str(r.service_id),
    name: String(r.name),
    url: str(r.url),
    status: r.status as InstanceStatus,
    deployStatus: str(r.deploy_status),
    agentName: str(r.agent_name),
    conversationId: str(r.conversation_id),
    inviteUrl: str(r.invite_url),
    instructions: str(r.instructions),
    createdAt: date(r.created_at)!,
    claimedAt: date(r.claimed_at),
    sourceBranch: str(r.source_branch),
    runtimeImage: str(r.runtime_image),
    templateHash: str(r.template_hash),
    openrouterKeyHash: str(r.openrouter_key_hash),
    agentmailInboxId: str(r.agentmail_inbox_id),
    gatewayToken: str(r.gateway_token),
    statusChangedAt: date(r.status_changed_at)!,
    failures: Number(r.failures ?? 0),
    lastError: str(r.last_error),
    intentBy: str(r.intent_by)
  }, { disableValidation: true }) // the table's column types already hold what the schema would check

const storeError = (operation: string) => (error: SqlError.SqlError) =>
  new StoreError({
    operation,
    message: `${error.message}${error.cause instanceof Error ? `: ${error.cause.message}` : ""}`,
    // A statement the database refused (syntax, constraint) will be refused again; anything else may pass.
    retryable: !/^(22|23|42)/.test(pgCode(error) ?? "")
  })

const pgCode = (error: SqlError.SqlError): string | undefined =>
  typeof error.cause === "object" && error.cause !== null && "code" in error.cause ? String(error.cause.code) : undefined

export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const reported = yield* Ref.make(new Set<string>())

  /** The fence condition of the current fiber: true outside a leader's pass. */
  const fence = Effect.map(FiberRef.get(CurrentFence), Option.match({ onNone: () => sql`TRUE`, onSome: (f) => fenceHolds(sql, f) }))

  const setClause = (to: InstanceStatus, patch: InstancePatch | undefined) => {
    const sets = [sql`status = ${to}`, sql`status_changed_at = CASE WHEN status = ${to} THEN status_changed_at ELSE now() END`]
    for (const [key, value] of Object.entries(patch ?? {})) {
      if (value === undefined) continue
      sets.push(sql`${sql(patchColumns[key as keyof InstancePatch])} = ${value as never}`)
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
      sql<Row>`SELECT * FROM instances WHERE pool = ${pool} ORDER BY created_at, id`.pipe(
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
        const inserted = yield* sql<Row>`
          INSERT INTO instances (id, pool, service_id, name, url, status, deploy_status, agent_name, conversation_id,
            invite_url, instructions, created_at, claimed_at, source_branch, runtime_image, openrouter_key_hash,
            agentmail_inbox_id, gateway_token, status_changed_at, failures, last_error, template_hash, intent_by)
          SELECT ${row.id}, ${row.pool}, ${row.serviceId}, ${row.name}, ${row.url}, ${row.status}, ${row.deployStatus},
            ${row.agentName}, ${row.conversationId}, ${row.inviteUrl}, ${row.instructions}, ${row.createdAt},
            ${row.claimedAt}, ${row.sourceBranch}, ${row.runtimeImage}, ${row.openrouterKeyHash},
            ${row.agentmailInboxId}, ${row.gatewayToken}, ${row.statusChangedAt}, ${row.failures}, ${row.lastError}, ${row.templateHash}, ${row.intentBy}
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
      }).pipe(Effect.withSpan("PgInstanceStore.transition")),
    transitionMany: (changes) =>
      changes.length === 0
        ? Effect.succeed([])
        : Effect.gen(function*() {
          const guard = yield* fence
          // One statement per distinct (to, from, patch keys) shape: a pass's changes share few shapes.
          const groups = new Map<string, Array<Transition>>()
          for (const change of changes) {
            const key = JSON.stringify([change.to, change.from, Object.keys(change.patch ?? {}).sort()])
            groups.set(key, [...(groups.get(key) ?? []), change])
          }
          const applied = yield* Effect.forEach([...groups.values()], (group) => applyGroup(group, guard))
          return applied.flat()
        }).pipe(Effect.withSpan("PgInstanceStore.transitionMany")),
    claimIdle: (pool, count = 1, claimer = null) =>
      sql<Row>`
        UPDATE instances SET status = 'claiming', status_changed_at = now(), intent_by = ${claimer}
        WHERE id IN (
          SELECT id FROM instances WHERE status = 'idle' AND pool = ${pool}
          ORDER BY created_at LIMIT ${count} FOR UPDATE SKIP LOCKED
        )
        RETURNING *`.pipe(
        Effect.mapError(storeError("store.claimIdle")),
        // RETURNING keeps no order: oldest first, as the caller was promised.
        Effect.map((rows) => rows.map(toInstance).sort(oldestFirst)),
        Effect.withSpan("PgInstanceStore.claimIdle")
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
  const applyGroup = (group: ReadonlyArray<Transition>, guard: Statement.Fragment) => {
    const { from, patch = {}, to } = group[0]!
    const keys = Object.keys(patch).filter((k) => patch[k as keyof InstancePatch] !== undefined) as Array<keyof InstancePatch>
    const ids = group.map((c) => c.id)
    const columns = keys.map((key) => ({
      column: patchColumns[key],
      values: group.map((c) => {
        const value = c.patch?.[key]
        return value instanceof Date ? value.toISOString() : value === null || value === undefined ? null : String(value)
      }),
      type: key === "claimedAt" ? "timestamptz" : key === "failures" ? "int" : "text"
    }))
    const sets = [sql`status = ${to}`, sql`status_changed_at = CASE WHEN i.status = ${to} THEN i.status_changed_at ELSE now() END`]
    for (const c of columns) sets.push(sql`${sql(c.column)} = (v.${sql(c.column)})::${sql.literal(c.type)}`)
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
  layer: Layer.effect(InstanceStore, make)
}

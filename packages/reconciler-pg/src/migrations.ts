/**
 * Schema migrations (`@effect/sql` Migrator). The first one adopts an existing `instances` table in place
 * (e.g. one made by the pool manager the server replaces, whose columns the server adds with migrations of its
 * own, run first): every column and row is kept, and the reconciler's columns are added with values derived
 * from what is there.
 */
import { SqlClient } from "@effect/sql"
import * as Migrator from "@effect/sql/Migrator"
import { Effect } from "effect"

/** The pool that rows written before there were pools belong to. */
export const DEFAULT_POOL = "default"

/** What every instance has, whatever it runs. */
const instanceColumns = [
  "service_id TEXT",
  "name TEXT",
  "url TEXT",
  "status TEXT",
  "deploy_status TEXT",
  "created_at TIMESTAMPTZ",
  "claimed_at TIMESTAMPTZ",
  "runtime_image TEXT"
]

const instances = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS instances (id TEXT PRIMARY KEY)`
  for (const column of instanceColumns) yield* sql.unsafe(`ALTER TABLE instances ADD COLUMN IF NOT EXISTS ${column}`)
  // Adopted rows may lack these; make them dependable for the queries that rely on them.
  yield* sql`UPDATE instances SET created_at = now() WHERE created_at IS NULL`
  yield* sql`UPDATE instances SET name = 'instance-' || id WHERE name IS NULL`
  yield* sql`UPDATE instances SET status = 'starting' WHERE status IS NULL`
  yield* sql`ALTER TABLE instances ALTER COLUMN created_at SET DEFAULT now(), ALTER COLUMN created_at SET NOT NULL`
  yield* sql`ALTER TABLE instances ALTER COLUMN name SET NOT NULL, ALTER COLUMN status SET NOT NULL`
  // The reconciler's own columns.
  yield* sql.unsafe(`ALTER TABLE instances ADD COLUMN IF NOT EXISTS pool TEXT NOT NULL DEFAULT '${DEFAULT_POOL}'`)
  yield* sql`ALTER TABLE instances ADD COLUMN IF NOT EXISTS status_changed_at TIMESTAMPTZ`
  yield* sql`UPDATE instances SET status_changed_at = COALESCE(claimed_at, created_at) WHERE status_changed_at IS NULL`
  yield* sql`ALTER TABLE instances ALTER COLUMN status_changed_at SET DEFAULT now(), ALTER COLUMN status_changed_at SET NOT NULL`
  yield* sql`ALTER TABLE instances ADD COLUMN IF NOT EXISTS failures INTEGER NOT NULL DEFAULT 0`
  yield* sql`ALTER TABLE instances ADD COLUMN IF NOT EXISTS last_error TEXT`
  // service_id was UNIQUE in the seed; name becomes unique too (creates are idempotent by name).
  yield* sql`CREATE UNIQUE INDEX IF NOT EXISTS instances_service_id_key ON instances (service_id)`
  yield* sql`CREATE UNIQUE INDEX IF NOT EXISTS instances_name_key ON instances (name)`
  // The hot queries: the idle claim (by pool, oldest first) and a pass's listing of a pool.
  yield* sql`CREATE INDEX IF NOT EXISTS instances_idle_by_age ON instances (pool, created_at) WHERE status = 'idle'`
  yield* sql`CREATE INDEX IF NOT EXISTS instances_by_pool ON instances (pool, created_at)`
})

const leases = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  // One row per pool: who reconciles it, until when, and the epoch that fences its writes.
  yield* sql`
    CREATE TABLE IF NOT EXISTS warmpool_leases (
      name TEXT PRIMARY KEY,
      holder TEXT NOT NULL,
      epoch BIGINT NOT NULL,
      expires_at TIMESTAMPTZ NOT NULL
    )`
})

const templateHashes = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  // Which pool template a row was created from; NULL for rows older than rollouts (judged by runtime_image).
  yield* sql`ALTER TABLE instances ADD COLUMN IF NOT EXISTS template_hash TEXT`
})

const intents = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  // Who made a row's last intent (creating, claiming, deleting): the next leader resolves those of a dead
  // process at once instead of after a timeout. Only added: the seed's table keeps every column as it was.
  yield* sql`ALTER TABLE instances ADD COLUMN IF NOT EXISTS intent_by TEXT`
})

const maps = Effect.gen(function*() {
  // A row's maps: the credentials issuers' handles and the runtime's claim record, each key that has no column
  // of its own (see PgInstanceStore.layerWithColumns).
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE instances
    ADD COLUMN IF NOT EXISTS handles JSONB NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN IF NOT EXISTS attributes JSONB NOT NULL DEFAULT '{}'::jsonb`
})

const idleNewestFirst = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  // Claims take the newest idle row, the id breaking ties. Read backwards, this index gives exactly that order
  // (created_at DESC, id), one entry per claim; over the older (pool, created_at) index each claim sorted a batch.
  yield* sql`CREATE INDEX IF NOT EXISTS instances_idle_newest ON instances (pool, created_at, id DESC) WHERE status = 'idle'`
  yield* sql`DROP INDEX IF EXISTS instances_idle_by_age`
})

export const migrations = Migrator.fromRecord({
  "1_instances": instances,
  "2_leases": leases,
  "3_template_hash": templateHashes,
  // 4 made the server dashboard's table, which the server's own migrations make now (ids are never reused).
  "5_intents": intents,
  "6_maps": maps,
  "7_idle_newest": idleNewestFirst
})

/** Brings the schema up to date; safe to run on every start and from several replicas at once. */
export const runMigrations = Migrator.make({})({ loader: migrations, table: "warmpool_migrations" })

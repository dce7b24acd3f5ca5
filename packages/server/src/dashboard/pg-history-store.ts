/**
 * The dashboard's history in Postgres (`warmpool_dashboard_samples`): the charts outlive a restart, and every
 * replica's records are merged into the same picture. A record a minute per replica; a few hours kept.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import { StoreError } from "@warmpool/reconciler"
import { Effect, Layer } from "effect"
import { HistoryStore, type IntervalRecord } from "./history.js"

/** The history's table: what each replica counted in each interval (a JSON record), kept a few hours. */
export const createDashboardSamples = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE IF NOT EXISTS warmpool_dashboard_samples (
      replica TEXT NOT NULL,
      at TIMESTAMPTZ NOT NULL,
      record JSONB NOT NULL,
      PRIMARY KEY (replica, at)
    )`
  yield* sql`CREATE INDEX IF NOT EXISTS warmpool_dashboard_samples_at ON warmpool_dashboard_samples (at)`
})

const storeError = (operation: string) => (error: SqlError.SqlError) =>
  new StoreError({ operation, message: error.message, retryable: true })

/** JSON has no Infinity: the open-ended latency bucket is stored with a null bound. */
const decode = (record: IntervalRecord): IntervalRecord => ({
  ...record,
  latency: record.latency.map(([bound, count]) => [bound === null ? Infinity : bound, count] as const)
})

export const PgHistoryStore = {
  layer: Layer.effect(
    HistoryStore,
    Effect.map(SqlClient.SqlClient, (sql) =>
      HistoryStore.of({
        append: (replica, record) =>
          sql`INSERT INTO warmpool_dashboard_samples (replica, at, record)
              VALUES (${replica}, ${new Date(record.at)}, ${JSON.stringify(record)}::jsonb)
              ON CONFLICT (replica, at) DO NOTHING`.pipe(Effect.asVoid, Effect.mapError(storeError("history.append"))),
        since: (after) =>
          sql<{ record: IntervalRecord }>`SELECT record FROM warmpool_dashboard_samples WHERE at > ${new Date(after)} ORDER BY at`.pipe(
            Effect.map((rows) => rows.map((row) => decode(row.record))),
            Effect.mapError(storeError("history.since"))
          ),
        trim: (before) =>
          sql`DELETE FROM warmpool_dashboard_samples WHERE at < ${new Date(before)}`.pipe(Effect.asVoid, Effect.mapError(storeError("history.trim")))
      }))
  )
}

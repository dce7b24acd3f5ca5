/**
 * The server's tables: the seed's columns and the dashboard's history, in a migrations table of the server's
 * own; then the store's migrations (`@warmpool/reconciler/postgres`), which adopt the table the seed's made.
 */
import * as Migrator from "@effect/sql/Migrator"
import { runMigrations } from "@warmpool/reconciler/postgres"
import { Effect } from "effect"
import { addRailwayColumns, addSeedColumns } from "./convos/seed-table.js"
import { createDashboardSamples } from "./dashboard/pg-history-store.js"

/** Brings every table up to date; safe on every start and from several replicas at once. */
export const migrateServerTables = Migrator.make({})({
  loader: Migrator.fromRecord({ "1_seed_columns": addSeedColumns, "2_dashboard_samples": createDashboardSamples, "3_railway_columns": addRailwayColumns }),
  table: "warmpool_server_migrations"
}).pipe(Effect.zipRight(runMigrations))

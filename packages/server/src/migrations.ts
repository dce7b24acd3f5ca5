/**
 * The server's tables: the seed's columns, the dashboard's history and the seed's `pool_settings`, in a migrations table of the server's
 * own; then the store's migrations (`@warmpool/reconciler-pg`), which adopt the table the seed's made.
 */
import * as Migrator from "@effect/sql/Migrator"
import { runMigrations } from "@warmpool/reconciler-pg"
import { Effect } from "effect"
import { createCoordinationTables, indexConversations } from "./coordination/pg-coordination.js"
import { addRailwayColumns, addSeedColumns } from "./convos/seed-table.js"
import { createDashboardSamples } from "./dashboard/pg-history-store.js"
import { createPoolSettings } from "./settings/pool-settings.js"

/** Brings every table up to date; safe on every start and from several replicas at once. */
export const migrateServerTables = Migrator.make({})({
  loader: Migrator.fromRecord({
    "1_seed_columns": addSeedColumns,
    "2_dashboard_samples": createDashboardSamples,
    "3_pool_settings": createPoolSettings,
    // The claim's later fields (profile_image, metadata, source): the seed columns again, each added if missing.
    "4_claim_columns": addSeedColumns,
    "5_claim_coordination": createCoordinationTables,
    // Where a Railway instance lives: its project and volume (RAILWAY_PLACEMENT, RAILWAY_VOLUME_MOUNT_PATH).
    "6_railway_columns": addRailwayColumns
  }),
  table: "warmpool_server_migrations"
}).pipe(Effect.zipRight(runMigrations), Effect.zipRight(indexConversations))

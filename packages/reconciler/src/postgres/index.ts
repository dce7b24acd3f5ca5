/** Postgres: the store, its migrations, leader election, and an embedded server. */
export { DEFAULT_POOL, migrations, runMigrations } from "./migrations.js"
export { PgInstanceStore } from "./store.js"
export { PgIncarnations } from "./incarnations.js"
export { PgPoolEvents, POOL_EVENTS_CHANNEL } from "./pool-events.js"
export { PgLeadership, type PgLeadershipOptions } from "./leadership.js"
export { CurrentFence, type Fence } from "./fence.js"
export { type EmbeddedPostgresOptions, freePort, type RunningPostgres, standInDataDir, startEmbeddedPostgres } from "./embedded.js"

/** Postgres implementations of warmpool's services: the store, its migrations, incarnations, pool events, leader election. */
export { DEFAULT_POOL, migrations, runMigrations } from "./migrations.js"
export { PgInstanceStore } from "./store.js"
export { PgIncarnations } from "./incarnations.js"
export { PgPoolEvents, POOL_EVENTS_CHANNEL } from "./pool-events.js"
export { PgLeadership, type PgLeadershipOptions } from "./leadership.js"
export { CurrentFence, type Fence } from "./fence.js"

export { type EmbeddedPostgresOptions, type RunningPostgres, standInDataDir, startEmbeddedPostgres } from "./embedded.js"

/**
 * The seed's `instances` table: the pool manager this server replaces made it, and other programs read it, so
 * its columns stay and are written as the seed wrote them. The store keeps what is particular to Convos in a
 * row's maps; this says which map keys have a seed column, and adds those columns (a server migration, run
 * before the store's own, which adopt whatever table they find).
 */
import { SqlClient } from "@effect/sql"
import { AGENTMAIL_INBOX_HANDLE } from "@warmpool/providers-agentmail"
import { OPENROUTER_KEY_HANDLE } from "@warmpool/providers-openrouter"
import { RAILWAY_PROJECT_HANDLE, RAILWAY_VOLUME_HANDLE } from "@warmpool/providers-railway"
import { PgInstanceStore } from "@warmpool/reconciler-pg"
import { Effect } from "effect"
import { GATEWAY_TOKEN_HANDLE } from "./secrets.js"

/** Map keys kept in the seed's columns: the credentials' handles and what a Convos claim records. */
export const seedColumns = {
  handles: {
    [OPENROUTER_KEY_HANDLE]: "openrouter_key_hash",
    [AGENTMAIL_INBOX_HANDLE]: "agentmail_inbox_id",
    [GATEWAY_TOKEN_HANDLE]: "gateway_token"
  },
  attributes: {
    agentName: "agent_name",
    instructions: "instructions",
    conversationId: "conversation_id",
    inviteUrl: "invite_url",
    sourceBranch: "source_branch",
    profileImage: "profile_image",
    metadata: "metadata",
    source: "source"
  }
} as const

/** The seed's columns, on the table the seed made or on a new one. */
export const addSeedColumns = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS instances (id TEXT PRIMARY KEY)`
  const columns = [...Object.values(seedColumns.handles), ...Object.values(seedColumns.attributes)]
  for (const column of columns) yield* sql.unsafe(`ALTER TABLE instances ADD COLUMN IF NOT EXISTS ${column} TEXT`)
  // The seed named every service `convos-agent-<id>`; a row that lost its name gets that one back.
  yield* sql`ALTER TABLE instances ADD COLUMN IF NOT EXISTS name TEXT`
  yield* sql`UPDATE instances SET name = 'convos-agent-' || id WHERE name IS NULL`
})

/**
 * What the Railway provider keeps on a row, in columns of their own: the project an instance lives in (its
 * placement's, see RAILWAY_PLACEMENT) and its volume (`volume_id`, the replaced system's name for it).
 */
export const railwayColumns = {
  [RAILWAY_PROJECT_HANDLE]: "railway_project_id",
  [RAILWAY_VOLUME_HANDLE]: "volume_id"
} as const

/** The Railway provider's columns, added to a table migrated before they existed. */
export const addRailwayColumns = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  for (const column of Object.values(railwayColumns)) yield* sql.unsafe(`ALTER TABLE instances ADD COLUMN IF NOT EXISTS ${column} TEXT`)
})

/** The store on the seed's table. */
export const SeedInstanceStore = PgInstanceStore.layerWithColumns({ ...seedColumns, handles: { ...seedColumns.handles, ...railwayColumns } })

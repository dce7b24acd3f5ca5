import { PgClient } from "@effect/sql-pg"
import { SqlClient } from "@effect/sql"
import { Effect, Redacted } from "effect"
import { migrateSeedTable } from "../src/convos/seed-table.js"
Effect.gen(function*() {
  yield* migrateSeedTable
  const sql = yield* SqlClient.SqlClient
  yield* sql`INSERT INTO instances (id, pool, name, status, url, agent_name, created_at, claimed_at, gateway_token)
    SELECT 'r' || g, 'default', 'convos-agent-r' || g, 'claimed', 'https://r' || g || '.up.railway.app', 'agent ' || g,
      now() - interval '1 day', now() - interval '1 hour', md5(g::text) || md5(g::text) FROM generate_series(1, 10000) AS g`
}).pipe(Effect.provide(PgClient.layer({ url: Redacted.make("postgres://postgres@127.0.0.1:5432/rsstest") })), Effect.runPromise).then(() => console.log("seeded"))

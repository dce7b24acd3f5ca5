/**
 * The seed's `instances` table stays what the replaced pool manager (and whatever else reads it) expects: a
 * table it made is adopted in place, and what a claim and the credentials record lands in the seed's columns.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { InMemoryConvosRuntime } from "@warmpool/providers-convos/testing"
import { RAILWAY_PROJECT_HANDLE, RAILWAY_VOLUME_HANDLE } from "@warmpool/providers-railway"
import { Controller, Credentials, InstanceStore, LocalIncarnations, newInstance, PoolSpec, SingleLeader } from "@warmpool/reconciler"
import { freshDatabase } from "@warmpool/reconciler-pg/testing"
import { InMemoryCompute, InMemoryHealth } from "@warmpool/reconciler/testing"
import { Effect, Layer, Option } from "effect"
import { inject } from "vitest"
import { SeedInstanceStore, seedColumns } from "../src/convos/seed-table.js"
import { migrateServerTables } from "../src/migrations.js"

const columnsOf = (sql: SqlClient.SqlClient) =>
  sql<{ column_name: string }>`SELECT column_name FROM information_schema.columns WHERE table_name = 'instances'`.pipe(
    Effect.map((rows) => new Set(rows.map((r) => r.column_name)))
  )

/** Credentials that hand out one handle for each seed column, as OpenRouter, AgentMail and the Convos secrets do. */
const SeedCredentials = Layer.succeed(Credentials, {
  issue: (instance) =>
    Effect.succeed({
      env: {},
      handles: { openrouterKeyHash: `or-${instance.name}`, agentmailInboxId: `${instance.name}@agentmail.to`, gatewayToken: "ab".repeat(32) }
    }),
  release: () => Effect.void
})

const spec = new PoolSpec({ name: "default", namePrefix: "convos-agent-", minIdle: 1, maxTotal: 3, template: { image: "img", env: {} } })

describe("the seed's instances table", () => {
  it.effect("a table made by the seed is adopted in place: rows, columns and values kept, read into the row's maps", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // The seed's table, as an older seed made it: no runtime_image column.
      yield* sql`
        CREATE TABLE instances (
          id TEXT PRIMARY KEY, service_id TEXT UNIQUE, name TEXT, url TEXT, status TEXT, deploy_status TEXT,
          agent_name TEXT, conversation_id TEXT, invite_url TEXT, instructions TEXT,
          created_at TIMESTAMPTZ DEFAULT now(), claimed_at TIMESTAMPTZ, source_branch TEXT,
          openrouter_key_hash TEXT, agentmail_inbox_id TEXT, gateway_token TEXT)`
      yield* sql`
        INSERT INTO instances (id, service_id, name, status, agent_name, conversation_id, claimed_at, gateway_token, openrouter_key_hash)
        VALUES ('old', 'svc-old', NULL, 'claimed', 'tokyo', 'conv-1', now(), ${"cd".repeat(32)}, 'hash-old')`
      yield* migrateServerTables
      yield* migrateServerTables // idempotent
      const [row] = yield* Effect.flatMap(InstanceStore, (s) => s.list("default")).pipe(Effect.provide(SeedInstanceStore))
      expect(row).toMatchObject({
        id: "old",
        name: "convos-agent-old",
        status: "claimed",
        attributes: { agentName: "tokyo", conversationId: "conv-1" },
        handles: { gatewayToken: "cd".repeat(32), openrouterKeyHash: "hash-old" }
      })
      expect([...(yield* columnsOf(sql))]).toEqual(expect.arrayContaining(["runtime_image", "pool", "handles", "attributes"]))
    }).pipe(Effect.provide(freshDatabase(inject("postgresUrl"), { migrate: false }))))

  it.effect("a row records its Railway project and volume in columns of their own, added by migration", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* migrateServerTables
      expect([...(yield* columnsOf(sql))]).toEqual(expect.arrayContaining(["railway_project_id", "volume_id"]))
      const store = yield* Effect.provide(InstanceStore, SeedInstanceStore)
      yield* store.insert(newInstance({
        id: "p1",
        pool: "default",
        name: "convos-agent-p1",
        status: "starting",
        now: new Date(),
        handles: { [RAILWAY_PROJECT_HANDLE]: "project-9", [RAILWAY_VOLUME_HANDLE]: "volume-9" }
      }))
      const [stored] = yield* sql<{ railway_project_id: string; volume_id: string }>`SELECT railway_project_id, volume_id FROM instances WHERE id = 'p1'`
      expect(stored).toEqual({ railway_project_id: "project-9", volume_id: "volume-9" })
      expect((yield* store.get("p1")).pipe(Option.map((r) => r.handles))).toEqual(Option.some({ [RAILWAY_PROJECT_HANDLE]: "project-9", [RAILWAY_VOLUME_HANDLE]: "volume-9" }))
    }).pipe(Effect.scoped, Effect.provide(freshDatabase(inject("postgresUrl"), { migrate: false }))))

  it.effect("on a fresh database: the seed's columns exist, and a claim and its credentials are written to them", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const seed = [...Object.values(seedColumns.handles), ...Object.values(seedColumns.attributes), "id", "service_id", "name", "url", "status", "deploy_status", "created_at", "claimed_at", "runtime_image"]
      expect([...(yield* columnsOf(sql))]).toEqual(expect.arrayContaining(seed))
      yield* Effect.scoped(Effect.gen(function*() {
        const controller = yield* Controller.make(spec, { background: false })
        yield* Effect.repeatN(controller.runPass, 2)
        const claimed = yield* controller.claim({ agentName: "osaka", instructions: "plan a trip" })
        const [row] = yield* sql`
          SELECT agent_name, instructions, conversation_id, invite_url, claimed_at IS NOT NULL AS claimed, openrouter_key_hash,
            agentmail_inbox_id, gateway_token, handles, attributes
          FROM instances WHERE id = ${claimed.instance.id}`
        expect(row).toEqual({
          agent_name: "osaka",
          instructions: "plan a trip",
          conversation_id: `conv-${claimed.instance.id}`,
          invite_url: `https://convos.test/v2?i=${claimed.instance.id}`,
          claimed: true,
          openrouter_key_hash: `or-${claimed.instance.name}`,
          agentmail_inbox_id: `${claimed.instance.name}@agentmail.to`,
          gateway_token: "ab".repeat(32),
          // Everything Convos has a seed column: nothing is left over for the maps' JSON.
          handles: {},
          attributes: {}
        })
      }))
    }).pipe(
      Effect.provide(
        Layer.mergeAll(SeedInstanceStore, InMemoryCompute.layer(), InMemoryHealth.layer(), SeedCredentials, InMemoryConvosRuntime.layer(), SingleLeader, LocalIncarnations.layer()).pipe(
          Layer.provideMerge(freshDatabase(inject("postgresUrl"), { migrate: migrateServerTables }))
        )
      )
    ))
})

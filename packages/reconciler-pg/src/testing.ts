/**
 * Real Postgres for tests: each suite gets its own freshly created, migrated database on the server
 * the test run provides (TEST_DATABASE_URL, DATABASE_URL, or the embedded one started by the global setup),
 * dropped when the suite ends. Runs never see each other's rows.
 */
import { PgClient } from "@effect/sql-pg"
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Redacted, type Scope } from "effect"
import { randomBytes } from "node:crypto"
import { chmodSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { StoreError } from "@warmpool/reconciler"
import { runMigrations } from "./migrations.js"

// Brings vitest's types into this program (nothing else here imports vitest) so the augmentation has a module to extend.
import type {} from "vitest"

declare module "vitest" {
  export interface ProvidedContext {
    /** The Postgres server tests make their databases on (see the global setup). */
    readonly postgresUrl: string
  }
}

/** The server URL tests use, from the environment: TEST_DATABASE_URL, then DATABASE_URL. */
export const testServerUrlFromEnv = (): string | undefined => process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL

/**
 * A Postgres server for tests and benchmarks, for the scope's lifetime: the one the environment names,
 * or an embedded one in a temporary folder (removed afterwards). The embedded one needs
 * `@warmpool/embedded-postgres` installed (an optional peer: loaded only when no URL is set).
 */
export interface TestServer {
  readonly url: string
  readonly embedded: boolean
}

export const testServer: Effect.Effect<TestServer, StoreError, Scope.Scope> = Effect.suspend((): Effect.Effect<TestServer, StoreError, Scope.Scope> => {
  const fromEnv = testServerUrlFromEnv()
  if (fromEnv !== undefined) return Effect.succeed({ url: fromEnv, embedded: false })
  return Effect.gen(function*() {
    const dataDir = yield* Effect.acquireRelease(
      // Traversable: as root, Postgres runs as another user.
      Effect.sync(() => {
        const dir = mkdtempSync(join(tmpdir(), "warmpool-pg-"))
        chmodSync(dir, 0o755)
        return dir
      }),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )
    const { startEmbeddedPostgres } = yield* Effect.promise(() => import("@warmpool/embedded-postgres"))
    const running = yield* startEmbeddedPostgres({ dataDir })
    return { url: Redacted.value(running.url), embedded: true }
  })
})

/** The URL of database `name` on the server at `serverUrl`. */
export const databaseUrl = (serverUrl: string, name: string): string => {
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return url.toString()
}

/** The URL of the database the `SqlClient` in context is on (e.g. a `freshDatabase`): for a second client or a process. */
export const currentDatabaseUrl = (serverUrl: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ db: string }>`SELECT current_database() AS db`).pipe(
    Effect.map(([row]) => databaseUrl(serverUrl, row!.db))
  )

/** Runs `f` on a short-lived connection to the server's maintenance database. */
export const onServer = <A, E>(serverUrl: string, f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
  Effect.flatMap(SqlClient.SqlClient, f).pipe(
    Effect.provide(PgClient.layer({ url: Redacted.make(serverUrl), maxConnections: 1 })),
    Effect.scoped
  )

export interface FreshDatabaseOptions {
  /** Connections in the test database's pool. Default 10. */
  readonly maxConnections?: number
  /** Run the migrations: true (the default) runs the store's; an effect runs that instead (e.g. yours, then the store's). */
  readonly migrate?: boolean | Effect.Effect<unknown, unknown, SqlClient.SqlClient>
}

/** A new database, migrated, with a `PgClient` on it; dropped when the layer is released. */
export const freshDatabase = (serverUrl: string, options: FreshDatabaseOptions = {}) =>
  Layer.unwrapScoped(
    Effect.gen(function*() {
      const name = `warmpool_test_${randomBytes(6).toString("hex")}`
      yield* Effect.acquireRelease(
        onServer(serverUrl, (sql) => sql.unsafe(`CREATE DATABASE ${name}`)),
        () => onServer(serverUrl, (sql) => sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).pipe(Effect.ignore)
      )
      const client = PgClient.layer({
        url: Redacted.make(databaseUrl(serverUrl, name)),
        maxConnections: options.maxConnections ?? 10
      })
      const migrate = options.migrate ?? true
      if (migrate === false) return client
      return Layer.tap(client, (ctx) => Effect.provide(migrate === true ? runMigrations : migrate, ctx).pipe(Effect.orDie))
    })
  )

/**
 * What a test of the built server in its own processes runs against: a database of its own on the test Postgres,
 * the Railway emulator (its instances over loopback TLS) and the OpenRouter emulator, all gone on `close`.
 */
import { startOpenRouterEmulator } from "@warmpool/providers-openrouter/emulator"
import { type RailwayEmulatorOptions, startRailwayEmulator } from "@warmpool/providers-railway/emulator"
import { databaseUrl, onServer } from "@warmpool/reconciler-pg/testing"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Effect, Exit, Redacted, Scope } from "effect"
import { randomBytes } from "node:crypto"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { inject } from "vitest"

const tlsDir = join(import.meta.dirname, "../fixtures/loopback-tls")

export const emulatedPlatform = async (options: { readonly databasePrefix: string; readonly deployMs: number; readonly managementKey: string; readonly railway?: RailwayEmulatorOptions }) => {
  const scope = Effect.runSync(Scope.make())
  const inScope = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Scope.extend(effect, scope))
  const postgres = inject("postgresUrl")
  const name = `${options.databasePrefix}_${randomBytes(5).toString("hex")}`
  await inScope(Effect.acquireRelease(
    onServer(postgres, (sql) => sql.unsafe(`CREATE DATABASE ${name}`)),
    () => onServer(postgres, (sql) => sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).pipe(Effect.ignore)
  ))
  const url = databaseUrl(postgres, name)
  const railway = await inScope(startRailwayEmulator({
    ...options.railway,
    deployMs: options.deployMs,
    instances: { key: readFileSync(join(tlsDir, "key.pem"), "utf8"), cert: readFileSync(join(tlsDir, "cert.pem"), "utf8") }
  }))
  const openrouter = await inScope(startOpenRouterEmulator({ managementKey: options.managementKey }))
  return {
    url,
    railway,
    openrouter,
    /** Runs `effect` until `close`. */
    inScope,
    /** The server's environment on these (provider, database, keys), for `POOL_API_KEY` `apiKey`. */
    env: (apiKey: string) => ({
      DATABASE_URL: url,
      POOL_API_KEY: apiKey,
      POOL_PROVIDER: "railway",
      RAILWAY_API_TOKEN: railway.accountToken,
      RAILWAY_TOKEN_KIND: "account",
      RAILWAY_PROJECT_ID: railway.projectId,
      RAILWAY_ENVIRONMENT_ID: railway.environments[0]!.id,
      RAILWAY_API_URL: railway.apiUrl,
      OPENROUTER_MANAGEMENT_KEY: options.managementKey,
      OPENROUTER_API_URL: openrouter.apiUrl,
      // The instances answer over HTTPS on loopback, with the fixture's certificate.
      NODE_EXTRA_CA_CERTS: join(tlsDir, "cert.pem")
    }),
    query: <A extends object>(text: string) =>
      Effect.runPromise(
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<A>(text)).pipe(
          Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })),
          Effect.scoped
        )
      ),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/**
 * What a test of the built server in its own processes runs against: a database of its own on the test Postgres,
 * the Railway emulator (its instances over loopback TLS) and the OpenRouter emulator, all gone on `close`.
 */
import type { RailwayEmulatorOptions } from "@warmpool/providers-railway/emulator"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Effect, Exit, Redacted, Scope } from "effect"
import { inject } from "vitest"
import { emulators, freshDatabase, platformEnv } from "./emulated-world.js"

export const emulatedPlatform = async (options: {
  readonly databasePrefix: string
  readonly deployMs: number
  readonly managementKey: string
  readonly railway?: RailwayEmulatorOptions
}) => {
  const scope = Effect.runSync(Scope.make())
  const inScope = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Scope.extend(effect, scope))
  const url = await inScope(freshDatabase(inject("postgresUrl"), options.databasePrefix))
  const emulated = await inScope(emulators(options.deployMs, { managementKey: options.managementKey, ...(options.railway ? { railway: options.railway } : {}) }))
  return {
    url,
    railway: emulated.railway,
    openrouter: emulated.openrouter,
    /** Runs `effect` until `close`. */
    inScope,
    /** The server's environment on these (provider, database, keys), for `POOL_API_KEY` `apiKey`. */
    env: (apiKey: string) => platformEnv({ databaseUrl: url, apiKey, emulators: emulated, managementKey: options.managementKey }),
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

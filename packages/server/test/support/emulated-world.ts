/**
 * What the end-to-end tests and benchmarks that run the built server share: a fresh database on the test
 * Postgres, the Railway and OpenRouter emulators (instances over HTTPS on loopback), and the server's environment
 * on them.
 */
import { startOpenRouterEmulator } from "@warmpool/providers-openrouter/emulator"
import { type RailwayEmulatorOptions, startRailwayEmulator } from "@warmpool/providers-railway/emulator"
import { databaseUrl, onServer } from "@warmpool/reconciler-pg/testing"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { readFileSync } from "node:fs"
import { join } from "node:path"

export const MANAGEMENT_KEY = "emulated-management-key"
const tlsDir = join(import.meta.dirname, "../fixtures/loopback-tls")

/** A database of its own on the server at `serverUrl`, dropped with the scope; its URL. */
export const freshDatabase = (serverUrl: string, prefix: string) => {
  const name = `${prefix}_${randomBytes(5).toString("hex")}`
  return Effect.acquireRelease(
    onServer(serverUrl, (sql) => sql.unsafe(`CREATE DATABASE ${name}`)),
    () => onServer(serverUrl, (sql) => sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).pipe(Effect.ignore)
  ).pipe(Effect.as(databaseUrl(serverUrl, name)))
}

/** The Railway emulator (its instances answering over HTTPS on loopback) and the OpenRouter one, for the scope. */
export const emulators = (deployMs: number, options: { readonly managementKey?: string; readonly railway?: RailwayEmulatorOptions } = {}) =>
  Effect.all({
    railway: startRailwayEmulator({
      ...options.railway,
      deployMs,
      instances: { key: readFileSync(join(tlsDir, "key.pem"), "utf8"), cert: readFileSync(join(tlsDir, "cert.pem"), "utf8") }
    }),
    openrouter: startOpenRouterEmulator({ managementKey: options.managementKey ?? MANAGEMENT_KEY })
  })

/** The server's platform on the emulators: its database, keys, Railway and an OpenRouter key per instance. */
export const platformEnv = (options: {
  readonly databaseUrl: string
  readonly apiKey: string
  readonly emulators: Effect.Effect.Success<ReturnType<typeof emulators>>
  readonly managementKey?: string
}) => {
  const { openrouter, railway } = options.emulators
  return {
    DATABASE_URL: options.databaseUrl,
    POOL_API_KEY: options.apiKey,
    POOL_PROVIDER: "railway",
    RAILWAY_API_TOKEN: railway.accountToken,
    RAILWAY_TOKEN_KIND: "account",
    RAILWAY_PROJECT_ID: railway.projectId,
    RAILWAY_ENVIRONMENT_ID: railway.environments[0]!.id,
    RAILWAY_API_URL: railway.apiUrl,
    OPENROUTER_MANAGEMENT_KEY: options.managementKey ?? MANAGEMENT_KEY,
    OPENROUTER_API_URL: openrouter.apiUrl,
    // The instances answer over HTTPS on loopback, with the fixture's certificate.
    NODE_EXTRA_CA_CERTS: join(tlsDir, "cert.pem")
  }
}

/** The server's environment on the emulators, with its pool's size and a 1 s tick. */
export const serverEnv = (options: Parameters<typeof platformEnv>[0] & { readonly minIdle: number; readonly maxTotal: number }) => ({
  ...platformEnv(options),
  POOL_MIN_IDLE: String(options.minIdle),
  POOL_MAX_TOTAL: String(options.maxTotal),
  TICK_INTERVAL_MS: "1000"
})

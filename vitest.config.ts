import { defineConfig } from "vitest/config"

// Workspace packages resolve to their TypeScript sources (the "source" export condition),
// so tests never run against a stale dist/.
export default defineConfig({
  resolve: { conditions: ["source"] },
  ssr: { resolve: { conditions: ["source"], externalConditions: ["source"] } },
  test: {
    include: ["packages/*/test/**/*.test.ts", "examples/*/test/**/*.test.ts", "test/**/*.test.ts"],
    // A real Postgres for the run: from TEST_DATABASE_URL / DATABASE_URL, or an embedded one.
    globalSetup: ["packages/reconciler-pg/test/support/postgres-global-setup.ts"],
    testTimeout: 30_000,
    // The controller's pass lines are for operators; a test that asserts on them captures them with a logger
    // of its own (reconciler/test/pass-log.test.ts). Every other line, warnings included, still shows.
    onConsoleLog: (log) => !/message"?[=:]"pass \d+: /.test(log),
    // The JSON report gives .ci/run its closing "N passed, N failed" line.
    reporters: ["default", ["json", { outputFile: ".tsbuild/vitest-results.json" }]],
    hookTimeout: 120_000
  }
})

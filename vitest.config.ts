import { defineConfig } from "vitest/config"

// Workspace packages resolve to their TypeScript sources (the "source" export condition),
// so tests never run against a stale dist/.
export default defineConfig({
  resolve: { conditions: ["source"] },
  ssr: { resolve: { conditions: ["source"], externalConditions: ["source"] } },
  test: {
    include: ["packages/*/test/**/*.test.ts", "examples/*/test/**/*.test.ts"],
    // A real Postgres for the run: from TEST_DATABASE_URL / DATABASE_URL, or an embedded one.
    globalSetup: ["packages/reconciler/test/support/postgres-global-setup.ts"],
    testTimeout: 30_000,
    // The JSON report gives .ci/run its closing "N passed, N failed" line.
    reporters: ["default", ["json", { outputFile: ".tsbuild/vitest-results.json" }]],
    hookTimeout: 120_000
  }
})

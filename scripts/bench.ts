/**
 * `npm run bench`: runs every benchmark module, prints a table and writes `bench-results.json`
 * (a flat object of metric name → number). Benchmarks are measurements, not timed tests.
 * Each module exports `run(): Promise<Record<string, number>>`.
 */
import { writeFileSync } from "node:fs"
import { basename } from "node:path"
import { fileURLToPath } from "node:url"

const modules = [
  "../packages/reconciler/bench/plan.ts",
  "../packages/reconciler/bench/rollout.ts",
  "../packages/reconciler/bench/backfill.ts",
  "../packages/reconciler-pg/bench/claim-store.ts",
  "../packages/reconciler-pg/bench/waiting-claim.ts",
  "../packages/reconciler/bench/autoscale.ts",
  "../packages/providers-railway/bench/calls-per-pass.ts",
  "../packages/providers-kubernetes/bench/requests.ts",
  "../packages/providers-railway/bench/railway-placement.ts",
  "../packages/server/bench/http-claim.ts",
  "../packages/server/bench/rss.ts",
  "../packages/server/bench/railway-at-scale.ts",
  "../packages/server/bench/railway-placement.ts",
  "../packages/server/bench/chaos.ts",
  "./bench/package.ts"
]

const only = process.argv.slice(2)
/** A group named exactly as a module's file (`package`, `autoscale`) selects that module; other words select by path. */
const selected = (path: string) => only.some((o) => (modules.some((m) => basename(m, ".ts") === o) ? basename(path, ".ts") === o : path.includes(o)))
const results: Record<string, number> = {}
for (const path of modules) {
  if (only.length > 0 && !selected(path)) continue
  const started = Date.now()
  const mod = (await import(path)) as { run: () => Promise<Record<string, number>> }
  const metrics = await mod.run()
  Object.assign(results, metrics)
  console.error(`bench ${path.replace(/^\.\.?\//, "")}: ${((Date.now() - started) / 1000).toFixed(1)} s`)
}

const width = Math.max(...Object.keys(results).map((k) => k.length))
console.log(`${"metric".padEnd(width)}  value`)
for (const [name, value] of Object.entries(results)) {
  console.log(`${name.padEnd(width)}  ${Number.isInteger(value) ? value : value.toFixed(3)}`)
}
const out = fileURLToPath(new URL("../bench-results.json", import.meta.url))
writeFileSync(out, JSON.stringify(results, null, 2) + "\n")
console.log(`wrote ${out}`)
process.exit(0)

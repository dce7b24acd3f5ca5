/** Starts the pool, claims a sandbox for "ada" (waiting for a warm one), runs code in it, stops. */
import { Effect, Redacted } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SandboxPool, SandboxPoolLive } from "./pool.js"

const program = Effect.gen(function*() {
  const pool = yield* SandboxPool
  const { result, instance } = yield* pool.claim({ owner: "ada", ttlSeconds: 600 }, { waitMs: 30_000 })
  console.log(`claimed ${instance.name} for ${instance.attributes.owner} until ${instance.attributes.expiresAt}`)
  const headers = { authorization: `Bearer ${Redacted.value(result.token)}` }
  const run = (code: string) => Effect.promise(() => fetch(result.endpoint, { method: "POST", headers, body: code }).then((r) => r.json()))
  console.log("const xs = [3, 4, 5]; mean(xs) →", yield* run("const xs = [3, 4, 5]; mean(xs)"))
  console.log("sum(xs) →", yield* run("sum(xs)"))
  yield* pool.stop("5 seconds")
})

await Effect.runPromise(program.pipe(Effect.provide(SandboxPoolLive({ dataDir: mkdtempSync(join(tmpdir(), "sandbox-pool-")) }))))

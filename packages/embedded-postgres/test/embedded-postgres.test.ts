/**
 * The embedded Postgres behind a zero-config start: a cluster is made once and found again, and the Postgres of
 * a run that was killed (orphaned, still holding the folder) is stopped instead of blocking the next start; a
 * Postgres that a live process still runs is not ours to stop.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Redacted, Scope } from "effect"
import { execFileSync, spawn } from "node:child_process"
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import pg from "pg"
import { freePort } from "@warmpool/reconciler"
import { startEmbeddedPostgres } from "../src/index.js"

const query = (url: Redacted.Redacted<string>, text: string) =>
  Effect.promise(async () => {
    const client = new pg.Client(Redacted.value(url))
    await client.connect()
    try {
      return (await client.query(text)).rows
    } finally {
      await client.end()
    }
  })

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe("embedded Postgres", () => {
  it.live("keeps its data across starts, and stops the orphaned Postgres of a killed run", () =>
    Effect.gen(function*() {
      const dataDir = join(yield* Effect.acquireRelease(
        Effect.sync(() => {
          const dir = mkdtempSync(join(tmpdir(), "warmpool-embedded-"))
          chmodSync(dir, 0o755) // as root, Postgres runs as the postgres user
          return dir
        }),
        (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
      ), "pg")

      const first = yield* Scope.make()
      const running = yield* Scope.extend(startEmbeddedPostgres({ dataDir }), first)
      yield* query(running.url, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
      // A second start on a folder whose Postgres this live process runs: refused, nothing touched.
      const second = yield* Effect.exit(Effect.scoped(startEmbeddedPostgres({ dataDir })))
      expect(Exit.isFailure(second) && String(second.cause)).toMatch(/another process \(pid \d+\) runs the Postgres in/)
      yield* Scope.close(first, Exit.void)

      // A run killed with SIGKILL leaves its Postgres behind, orphaned, holding the folder.
      const port = yield* freePort
      const runAs = process.getuid?.() === 0
        ? { uid: Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" })), gid: Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" })) }
        : {}
      // Its output goes to a file the postgres user may write, so that a start that fails says why.
      const log = join(tmpdir(), `warmpool-orphan-${process.pid}-${port}.log`)
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(log, { force: true })))
      spawn("sh", ["-c", `"${join(running.binaries, "bin", "postgres")}" -D "${dataDir}" -p ${port} >"${log}" 2>&1 &`], { ...runAs, stdio: "ignore" })
      const ready = () => existsSync(log) && readFileSync(log, "utf8").includes("ready to accept connections")
      // A loaded machine (the whole suite at once) may take a while to start it.
      yield* Effect.sleep("100 millis").pipe(
        Effect.repeat({ until: ready }),
        Effect.timeoutFail({ duration: "40 seconds", onTimeout: () => new Error(`the orphan did not start: ${existsSync(log) ? readFileSync(log, "utf8") : "no output"}`) })
      )
      const orphan = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0])
      expect(alive(orphan)).toBe(true)

      const restarted = yield* startEmbeddedPostgres({ dataDir })
      expect(alive(orphan)).toBe(false)
      expect(yield* query(restarted.url, "SELECT n FROM kept")).toEqual([{ n: 7 }])
    }).pipe(Effect.scoped), 120_000)
})

/**
 * `npm start` with nothing configured, as a user runs it: the built server in its own process on an embedded
 * Postgres and local instances. The pool fills, a claim works over HTTP, and shutdown leaves no process behind.
 */
import { isAlive } from "@warmpool/providers-local"
import { standInDataDir } from "@warmpool/embedded-postgres"
import { describe, expect, it } from "vitest"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { bareEnv, freePort, main, until } from "./support/process.js"

describe.runIf(existsSync(main))("npm start with nothing configured", () => {
  it("fills the pool, serves a claim, and stops its instances on shutdown", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "warmpool-start-"))
    chmodSync(dataDir, 0o755) // as root, the embedded Postgres runs as the postgres user
    const port = await freePort()
    const child: ChildProcess = spawn(process.execPath, [main, "serve"], {
      env: bareEnv({ PORT: String(port), WARMPOOL_DATA_DIR: dataDir, POOL_MIN_IDLE: "2", TICK_INTERVAL_MS: "1000" }),
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout!.on("data", (d) => (output += d))
    child.stderr!.on("data", (d) => (output += d))
    try {
      const key = await until("the generated key", async () => /POOL_API_KEY \(generated[^:]*\): (\S+)/.exec(output)?.[1], 30_000)
      // The banner is its own write, after the key's.
      await until("the banner", async () => (output.includes(`dashboard at http://localhost:${port}/`) ? true : undefined), 10_000)
      const base = `http://127.0.0.1:${port}`
      await until("two idle instances", async () => {
        const counts = await (await fetch(`${base}/api/pool/counts`)).json()
        return counts.idle >= 2 ? counts : undefined
      }, 45_000)
      const claim = await fetch(`${base}/api/pool/claim`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ agentName: "tokyo", instructions: "plan a trip" })
      })
      expect(claim.status).toBe(200)
      const answer = await claim.json()
      expect(answer.conversationId).toMatch(/^[0-9a-f]{16}$/)
      expect(answer.gatewayToken).toMatch(/^[0-9a-f]{64}$/)
      const pids = JSON.parse(readFileSync(join(dataDir, "local", "local-services.json"), "utf8")).map((s: { pid: number }) => s.pid) as Array<number>
      expect(pids.length).toBeGreaterThanOrEqual(2)
      child.kill("SIGTERM")
      await until("the server to exit", async () => (child.exitCode !== null || child.signalCode !== null ? true : undefined), 20_000)
      expect(pids.filter(isAlive)).toEqual([])
    } catch (error) {
      throw new Error(`${String(error)}\n--- server output ---\n${output.slice(-3000)}`)
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL")
    }
  }, 90_000)

  it("stops at start with one line per configuration problem", () => {
    const run = spawnSync(process.execPath, [main, "serve"], {
      env: bareEnv({ PORT: "abc", POOL_MIN_IDLE: "-1", POOL_ENVIRONMENT: "prod", POOL_PROVIDER: "railway" }),
      encoding: "utf8",
      timeout: 20_000
    })
    expect(run.status).toBe(1)
    const lines = run.stderr.trim().split("\n")
    expect(lines).toEqual(expect.arrayContaining([
      expect.stringMatching(/^PORT: /),
      expect.stringMatching(/^POOL_MIN_IDLE: must be a whole number ≥ 0/),
      expect.stringMatching(/^POOL_ENVIRONMENT: /)
    ]))
    expect(lines.length).toBe(3)
    const noKey = spawnSync(process.execPath, [main, "serve"], {
      env: bareEnv({ POOL_PROVIDER: "railway", POOL_MIN_IDLE: "9", POOL_MAX_TOTAL: "4" }),
      encoding: "utf8",
      timeout: 20_000
    })
    expect(noKey.status).toBe(1)
    expect(noKey.stderr.trim().split("\n")).toEqual([
      "POOL_API_KEY: required with the railway provider (instances and clients authenticate with it)",
      "pool: maxTotal (4) must be ≥ minIdle (9)"
    ])
    const badPools = spawnSync(process.execPath, [main, "serve"], {
      env: bareEnv({ POOLS: JSON.stringify([{ name: "openclaw", minIdle: -1 }, { name: "openclaw", minIdle: 1 }]) }),
      encoding: "utf8",
      timeout: 20_000
    })
    expect(badPools.status).toBe(1)
    expect(badPools.stderr.trim().split("\n")).toEqual(["POOLS[0] (openclaw): minIdle must be a whole number ≥ 0"])
  })
})

/** The repository this test runs in, cloned afresh by the next test. */
const repository = spawnSync("git", ["rev-parse", "--show-toplevel"], { cwd: import.meta.dirname, encoding: "utf8" }).stdout.trim()

describe.runIf(existsSync(main) && process.getuid?.() === 0 && repository !== "")("npm start as root from a private folder", () => {
  it("starts from a fresh clone in a mode-700 folder, says where its data is, and keeps the rows across a restart", async () => {
    // Like root's home on a fresh server: only its owner may enter it.
    const home = mkdtempSync(join(tmpdir(), "warmpool-home-"))
    expect(statSync(home).mode & 0o777).toBe(0o700)
    const clone = join(home, "warmpool")
    const dataDir = standInDataDir(join(clone, ".warmpool", "pg"))
    const step = (command: string, args: Array<string>) => {
      const result = spawnSync(command, args, { cwd: clone, encoding: "utf8", timeout: 240_000 })
      if (result.status !== 0) throw new Error(`${command} ${args.join(" ")}: ${result.stderr}${result.stdout}`.slice(-2000))
    }
    let server: ChildProcess | undefined
    let output = ""
    const start = async () => {
      const port = await freePort()
      output = ""
      // What `npm start` runs once built (the build step ran just before).
      server = spawn(process.execPath, ["packages/server/dist/main.js", "serve"], {
        cwd: clone,
        env: bareEnv({ PORT: String(port), POOL_API_KEY: "private-folder-key", POOL_MIN_IDLE: "1", TICK_INTERVAL_MS: "1000" }),
        stdio: ["ignore", "pipe", "pipe"]
      })
      server.stdout!.on("data", (d) => (output += d))
      server.stderr!.on("data", (d) => (output += d))
      return `http://127.0.0.1:${port}`
    }
    const stop = async () => {
      const child = server!
      child.kill("SIGTERM")
      await until("the server to exit", async () => (child.exitCode !== null || child.signalCode !== null ? true : undefined), 30_000)
      expect(child.exitCode).toBe(0)
    }
    const headers = { authorization: "Bearer private-folder-key", "content-type": "application/json" }
    try {
      spawnSync("git", ["clone", "--quiet", repository, clone])
      step("npm", ["ci", "--prefer-offline", "--no-audit", "--no-fund"])
      step("npm", ["run", "build"])

      const base = await start()
      await until("one idle instance", async () => {
        const counts = await (await fetch(`${base}/api/pool/counts`)).json()
        return counts.idle >= 1 ? counts : undefined
      }, 90_000)
      expect(output).toContain(`database: embedded Postgres in ${dataDir} (the postgres user it runs as cannot enter ${home};`)
      const claim = await fetch(`${base}/api/pool/claim`, { method: "POST", headers, body: JSON.stringify({ agentName: "kept", instructions: "" }) })
      expect(claim.status).toBe(200)
      const { instanceId } = await claim.json()
      await stop()

      // The same folder on the next start: the claimed row is still there.
      const again = await start()
      const status = await until("the status after a restart", async () => {
        const response = await fetch(`${again}/api/pool/status`, { headers })
        return response.ok ? await response.json() : undefined
      }, 60_000)
      expect(status.instances).toEqual(expect.arrayContaining([expect.objectContaining({ id: instanceId, status: "claimed", agentName: "kept" })]))
      await stop()
    } catch (error) {
      throw new Error(`${String(error)}\n--- server output ---\n${output.slice(-3000)}`)
    } finally {
      if (server !== undefined && server.exitCode === null) server.kill("SIGKILL")
      rmSync(home, { recursive: true, force: true })
      rmSync(dataDir, { recursive: true, force: true })
    }
  }, 420_000)
})

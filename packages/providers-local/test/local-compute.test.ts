import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { ConvosRuntime } from "@warmpool/providers-convos"
import { ComputeProvider, HealthProbe, InstanceRuntime, newInstance, ServiceUpgrader } from "@warmpool/reconciler"
import { computeProviderConformance } from "@warmpool/reconciler/conformance"
import { Duration, Effect, Layer, Redacted, Schedule } from "effect"
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { isAlive, LocalCompute, type LocalProgram } from "../src/index.js"

const API_KEY = "local-test-key"
const dataDir = () => mkdtempSync(join(tmpdir(), "warmpool-local-"))
const env = { POOL_API_KEY: API_KEY }

computeProviderConformance("local processes", LocalCompute.layer({ dataDir: dataDir(), startupDelayMs: 0 }), { env })


describe("LocalCompute", () => {
  it.live("an instance becomes ready after its start-up delay, provisions once, answers 409 after; shutdown stops it", () =>
    Effect.gen(function*() {
      const dir = dataDir()
      const clients = ConvosRuntime.layer({ apiKey: Redacted.make(API_KEY), healthTimeout: Duration.seconds(1) }).pipe(Layer.provide(FetchHttpClient.layer))
      const pid = yield* Effect.gen(function*() {
        const compute = yield* ComputeProvider
        const health = yield* HealthProbe
        const runtime = yield* InstanceRuntime
        const created = yield* compute.create({ name: "convos-agent-one", image: "reference", env })
        const target = { id: "one", url: created.url! }
        const first = yield* health.check(target).pipe(Effect.retry({ while: (h) => h === "unreachable", schedule: Schedule.spaced("50 millis") }))
        expect(first).not.toBe("ready")
        const ready = yield* health.check(target).pipe(
          Effect.filterOrFail((h) => h === "ready"),
          Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("5 seconds")))
        )
        expect(ready).toBe("ready")
        const instance = newInstance({ id: "one", pool: "p", name: "convos-agent-one", status: "claiming", url: created.url, now: new Date() })
        const result = yield* runtime.provision(instance, { agentName: "tokyo", instructions: "plan" })
        expect(result.conversationId).toMatch(/^[0-9a-f]{16}$/)
        expect((yield* Effect.flip(runtime.provision(instance, { agentName: "again", instructions: "x" })))._tag).toBe("AlreadyBoundError")
        const json = JSON.parse(readFileSync(join(dir, "local-services.json"), "utf8"))
        return json[0].pid as number
      }).pipe(Effect.provide(Layer.merge(LocalCompute.layer({ dataDir: dir, startupDelayMs: 700 }), clients)), Effect.scoped)
      // Shutdown waits for its children's exit events (reaped, not merely signalled): gone the moment the scope closed.
      expect(isAlive(pid)).toBe(false)
    }), 20_000)

  it.live("a restart is a fresh process behind the same URL, unbound again; a service of an earlier run cannot be restarted", () => {
    const dir = dataDir()
    return Effect.gen(function*() {
      const clients = ConvosRuntime.layer({ apiKey: Redacted.make(API_KEY), healthTimeout: Duration.seconds(1) }).pipe(Layer.provide(FetchHttpClient.layer))
      const pidOf = () => JSON.parse(readFileSync(join(dir, "local-services.json"), "utf8"))[0].pid as number
      const serviceId = yield* Effect.gen(function*() {
        const compute = yield* ComputeProvider
        const runtime = yield* InstanceRuntime
        const health = yield* HealthProbe
        const created = yield* compute.create({ name: "convos-agent-reset", image: "reference", env })
        const instance = newInstance({ id: "reset", pool: "p", name: "convos-agent-reset", status: "claiming", url: created.url, now: new Date() })
        const ready = health.check({ id: "reset", url: created.url! }).pipe(
          Effect.filterOrFail((h) => h === "ready"),
          // A process started through tsx: its start takes a while on a busy machine.
          Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("20 seconds")))
        )
        yield* ready
        yield* runtime.provision(instance, { agentName: "a", instructions: "b" })
        const before = pidOf()
        yield* Effect.flatMap(ServiceUpgrader, (u) => u.restart(created.serviceId))
        expect(pidOf()).not.toBe(before)
        expect(isAlive(before)).toBe(false)
        expect((yield* compute.list("convos-agent-")).map((s) => [s.serviceId, s.url])).toEqual([[created.serviceId, created.url]])
        // A new container: the conversation it held is gone, so it provisions again.
        yield* ready
        expect((yield* runtime.provision(instance, { agentName: "a", instructions: "b" })).joined).toBe(false)
        return created.serviceId
      }).pipe(Effect.provide(Layer.merge(LocalCompute.layer({ dataDir: dir, startupDelayMs: 0, stopOnShutdown: false }), clients)), Effect.scoped)
      // Another run of the provider finds the service but not the variables it was started with.
      const refused = yield* Effect.flatMap(ServiceUpgrader, (u) => Effect.flip(u.restart(serviceId))).pipe(
        Effect.provide(LocalCompute.layer({ dataDir: dir, startupDelayMs: 0 })),
        Effect.scoped
      )
      expect(refused).toMatchObject({ _tag: "InvalidRequestError", message: expect.stringContaining("earlier run") })
    }).pipe(
      // Left running on purpose for the second provider (stopOnShutdown: false): stopped whatever happened.
      Effect.ensuring(Effect.sync(() => {
        try {
          process.kill(JSON.parse(readFileSync(join(dir, "local-services.json"), "utf8"))[0].pid)
        } catch {
          // already stopped by the second provider
        }
      }))
    )
  }, 60_000)

  it.live("a redeploy records the new image, which a restarted provider still shows; the process keeps running", () =>
    Effect.gen(function*() {
      const dir = dataDir()
      const pid = yield* Effect.gen(function*() {
        const compute = yield* ComputeProvider
        const created = yield* compute.create({ name: "convos-agent-up", image: "reference:v1", env })
        yield* Effect.flatMap(ServiceUpgrader, (u) => u.redeploy(created.serviceId, { image: "reference:v2", env }))
        expect((yield* compute.list("convos-agent-")).map((s) => [s.image, s.deployStatus])).toEqual([["reference:v2", "SUCCESS"]])
        return JSON.parse(readFileSync(join(dir, "local-services.json"), "utf8"))[0].pid as number
      }).pipe(Effect.provide(LocalCompute.layer({ dataDir: dir, startupDelayMs: 0, stopOnShutdown: false })), Effect.scoped)
      expect(isAlive(pid)).toBe(true)
      const listed = yield* Effect.flatMap(ComputeProvider, (c) => c.list("convos-agent-")).pipe(
        Effect.provide(LocalCompute.layer({ dataDir: dir, startupDelayMs: 0 })),
        Effect.scoped
      )
      expect(listed.map((s) => s.image)).toEqual(["reference:v2"])
    }), 20_000)

  it.live("a restarted provider finds its live instances again and reports dead ones crashed", () =>
    Effect.gen(function*() {
      const dir = dataDir()
      const first = LocalCompute.layer({ dataDir: dir, startupDelayMs: 0, stopOnShutdown: false })
      const made = yield* Effect.flatMap(ComputeProvider, (c) => Effect.all([
        c.create({ name: "convos-agent-a", image: "reference", env }),
        c.create({ name: "convos-agent-b", image: "reference", env })
      ])).pipe(Effect.provide(first), Effect.scoped)
      const pids = JSON.parse(readFileSync(join(dir, "local-services.json"), "utf8")).map((s: { pid: number }) => s.pid) as Array<number>
      process.kill(pids[1]!, "SIGKILL")
      yield* Effect.sleep(Duration.millis(200))
      const listed = yield* Effect.flatMap(ComputeProvider, (c) => c.list("convos-agent-")).pipe(
        Effect.provide(LocalCompute.layer({ dataDir: dir, startupDelayMs: 0 })),
        Effect.scoped
      )
      expect(listed.map((s) => [s.serviceId, s.deployStatus])).toEqual([[made[0].serviceId, "SUCCESS"], [made[1].serviceId, "CRASHED"]])
      yield* Effect.sleep(Duration.millis(200))
      expect(isAlive(pids[0]!)).toBe(false) // the second provider stopped it on shutdown
    }), 20_000)

  // A program of the caller's: it answers what it was given, under a name of its own (its command line changed).
  const echo: LocalProgram = {
    command: process.execPath,
    args: ["-e", `process.title = "renamed"
      require("node:http").createServer((_, res) => res.end(JSON.stringify({ port: process.env.PORT, greeting: process.env.GREETING })))
        .listen(Number(process.env.PORT), "127.0.0.1")`]
  }
  const answer = (url: string) =>
    Effect.tryPromise(() => fetch(url).then((r) => r.json())).pipe(Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("5 seconds"))))

  it.live("runs a program of the caller's, with its port and environment; knows it as its own though it renamed itself", () =>
    Effect.gen(function*() {
      const dir = dataDir()
      const pid = yield* Effect.gen(function*() {
        const compute = yield* ComputeProvider
        const created = yield* compute.create({ name: "echo-one", image: "echo", env: { GREETING: "hello" } })
        expect(yield* answer(created.url!)).toEqual({ port: new URL(created.url!).port, greeting: "hello" })
        const pid = JSON.parse(readFileSync(join(dir, "local-services.json"), "utf8"))[0].pid as number
        expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).not.toContain("createServer")
        expect((yield* compute.list("echo-")).map((s) => s.deployStatus)).toEqual(["SUCCESS"])
        return pid
      }).pipe(Effect.provide(LocalCompute.layer({ dataDir: dir, program: echo, startupDelayMs: 0 })), Effect.scoped)
      expect(isAlive(pid)).toBe(false) // stopped on shutdown
    }), 20_000)

  it.live("a program that cannot start fails the create with the reason", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flatMap(ComputeProvider, (c) => c.create({ name: "nothing-one", image: "none", env: {} })).pipe(
        Effect.provide(LocalCompute.layer({ dataDir: dataDir(), program: { command: "/nonexistent/program", args: [] } })),
        Effect.scoped,
        Effect.flip
      )
      expect(error._tag).toBe("TransientError")
      expect(error.message).toContain("ENOENT")
    }))

  it.live("a pid of the state file that another process now holds is reported crashed and never signalled", () =>
    Effect.gen(function*() {
      const dir = dataDir()
      const stranger = spawn("sleep", ["30"], { stdio: "ignore" })
      const pid = stranger.pid!
      writeFileSync(join(dir, "local-services.json"), JSON.stringify([{ serviceId: "local-gone", name: "echo-old", pid, port: 1, image: "echo", createdAt: 0 }]))
      const listed = yield* Effect.flatMap(ComputeProvider, (c) => c.list("echo-")).pipe(
        Effect.provide(LocalCompute.layer({ dataDir: dir, program: echo })),
        Effect.scoped
      )
      expect(listed.map((s) => s.deployStatus)).toEqual(["CRASHED"])
      expect(isAlive(pid)).toBe(true) // shutdown left it alone
      stranger.kill()
    }), 20_000)
})

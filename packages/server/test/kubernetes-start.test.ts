/**
 * `POOL_PROVIDER=kubernetes npm start` with a kubeconfig, as a user runs it: the built server in its own process,
 * its kubeconfig pointing at the Kubernetes emulator, and a test kubelet that runs each Pod's container as a
 * reference runtime on a loopback address of its own, with the environment it resolves from the Pod's Secret.
 * The pool fills with Pods, a claim provisions one over HTTP, and a steady pool makes no list calls.
 */
import { startReferenceRuntime } from "@warmpool/providers-convos/reference-runtime"
import { makeKubelet, startKubeEmulator } from "@warmpool/providers-kubernetes/emulator"
import { databaseUrl, onServer } from "@warmpool/reconciler-pg/testing"
import { Effect, Exit, Scope } from "effect"
import { randomBytes } from "node:crypto"
import type { Server } from "node:http"
import { existsSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, inject, it } from "vitest"
import { main, type ServerProcess, startServer, stop, until } from "./support/process.js"

const API_KEY = "kubernetes-start-key"

describe.runIf(existsSync(main))("POOL_PROVIDER=kubernetes npm start", () => {
  it("runs a pool of Pods: fills, serves a claim, and watches instead of listing", async () => {
    const scope = Effect.runSync(Scope.make())
    const inScope = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Scope.extend(effect, scope))
    const runtimes: Array<Server> = []
    let server: ServerProcess | undefined
    const timer: { handle?: NodeJS.Timeout } = {}
    try {
      const postgres = inject("postgresUrl")
      const name = `warmpool_kube_${randomBytes(5).toString("hex")}`
      await inScope(Effect.acquireRelease(
        onServer(postgres, (sql) => sql.unsafe(`CREATE DATABASE ${name}`)),
        () => onServer(postgres, (sql) => sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).pipe(Effect.ignore)
      ))
      const emulator = await inScope(startKubeEmulator({ namespace: "agents" }))
      const kubeconfig = join(mkdtempSync(join(tmpdir(), "warmpool-kube-")), "config")
      writeFileSync(kubeconfig, emulator.kubeconfig)

      // The kubelet: each Pod's container is a reference runtime on 127.0.0.<n>:8080, with the Pod's own environment.
      let host = 2
      const kubelet = makeKubelet(emulator.kubeconfigFor("kubelet"), "agents", {
        run: async (_, env) => {
          const podIP = `127.0.0.${host++}`
          runtimes.push(await startReferenceRuntime({ host: podIP, port: Number(env.PORT), apiKey: env.POOL_API_KEY!, startupDelayMs: 0 }))
          return podIP
        }
      })
      timer.handle = setInterval(() => void Effect.runPromise(Effect.ignore(kubelet.startAll)), 200)

      server = await startServer({ DATABASE_URL: databaseUrl(postgres, name), POOL_API_KEY: API_KEY, POOL_PROVIDER: "kubernetes", KUBECONFIG: kubeconfig, POOL_MIN_IDLE: "2" })
      const base = server.base
      await until("two idle instances", async () => {
        const counts = await (await fetch(`${base}/api/pool/counts`)).json()
        return counts.idle >= 2 ? counts : undefined
      }, 45_000)
      expect(emulator.pods("agents")).toHaveLength(2)
      // The pool's key reached the containers through their Secrets only.
      expect(JSON.stringify(emulator.pods("agents"))).not.toContain(API_KEY)

      const claim = await fetch(`${base}/api/pool/claim`, {
        method: "POST",
        headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ agentName: "tokyo", instructions: "plan a trip" })
      })
      expect(claim.status).toBe(200)
      const answer = await claim.json()
      expect(answer.conversationId).toMatch(/^[0-9a-f]{16}$/)
      await until("the backfill", async () => (emulator.pods("agents").length === 3 ? true : undefined), 20_000)

      const lists = emulator.calls().filter((c) => c.user === "warmpool" && c.verb === "list")
      expect(lists).toHaveLength(1) // one list at start; everything since came over the watch
    } catch (error) {
      throw new Error(`${String(error)}\n--- server output ---\n${server?.output().slice(-3000) ?? ""}`)
    } finally {
      clearInterval(timer.handle)
      await stop(server)
      for (const runtime of runtimes) runtime.close()
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }, 90_000)
})

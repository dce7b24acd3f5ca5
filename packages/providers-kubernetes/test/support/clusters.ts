/**
 * The API servers the provider's suite runs against: the emulator in this package always; a real kube-apiserver
 * with etcd (envtest's way, no kubelet) when their binaries are found — `KUBEBUILDER_ASSETS`, `PATH`, or the cache
 * of scripts/kube/build-apiserver.sh. The test plays the kubelet through the API (`pods/status`), on both.
 */
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node"
import { Effect, Schedule, type Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { generateKeyPairSync, randomUUID } from "node:crypto"
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { createServer, Socket } from "node:net"
import { homedir, tmpdir } from "node:os"
import { delimiter, join } from "node:path"
import { kubeconfigOf, type KubeEmulator, startKubeEmulator } from "../../src/emulator/index.js"
export { makeKubelet } from "../../src/emulator/kubelet.js"

export interface TestCluster {
  readonly name: "emulator" | "kube-apiserver"
  /** The provider's kubeconfig. */
  readonly kubeconfig: string
  /** The test kubelet's (on the emulator its calls are counted apart from the provider's). */
  readonly kubeletKubeconfig: string
  /** A fresh namespace for one test. */
  readonly namespace: Effect.Effect<string>
  /** Cuts every open watch of the provider (the server's timeout, a proxy dropping the connection). */
  readonly dropWatches: Effect.Effect<void>
  /** The emulator itself, where the cluster is one. */
  readonly emulator?: KubeEmulator
}

export const kubeConfigFrom = (yaml: string): KubeConfig => {
  const kubeConfig = new KubeConfig()
  kubeConfig.loadFromString(yaml)
  return kubeConfig
}

export const emulatorCluster = (options: { readonly podQuota?: number } = {}): Effect.Effect<TestCluster, never, Scope.Scope> =>
  Effect.map(startKubeEmulator(options), (emulator) => {
    let next = 0
    return {
      name: "emulator" as const,
      kubeconfig: emulator.kubeconfig,
      kubeletKubeconfig: emulator.kubeconfigFor("kubelet"),
      namespace: Effect.sync(() => `test-${next++}`),
      dropWatches: Effect.sync(() => emulator.dropWatches()),
      emulator
    }
  })

/** The directory with `kube-apiserver` and `etcd`, if this machine has them. */
export const findApiServerAssets = (): string | undefined => {
  const has = (dir: string) => existsSync(join(dir, "kube-apiserver")) && existsSync(join(dir, "etcd"))
  const candidates = [
    ...(process.env.KUBEBUILDER_ASSETS ? [process.env.KUBEBUILDER_ASSETS] : []),
    ...(process.env.PATH ?? "").split(delimiter),
    ...(() => {
      const cache = join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "warmpool", "kube")
      return existsSync(cache) ? readdirSync(cache).filter((d) => d.startsWith("v")).sort().reverse().map((d) => join(cache, d)) : []
    })()
  ]
  return candidates.find((dir) => dir !== "" && has(dir))
}

const freePort = Effect.async<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** A TCP proxy on loopback whose connections the test can cut (a dropped watch, on a server that would not drop it). */
const cuttableProxy = (target: number): Effect.Effect<{ readonly port: number; readonly cut: () => void }, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ port: number; cut: () => void; close: () => void }>((resume) => {
      const sockets = new Set<Socket>()
      const server = createServer((client) => {
        const upstream = new Socket()
        upstream.connect(target, "127.0.0.1")
        sockets.add(client).add(upstream)
        client.pipe(upstream).pipe(client)
        const drop = () => {
          client.destroy()
          upstream.destroy()
          sockets.delete(client)
          sockets.delete(upstream)
        }
        client.on("error", drop).on("close", drop)
        upstream.on("error", drop).on("close", drop)
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        const cut = () => {
          for (const socket of sockets) socket.destroy()
          sockets.clear()
        }
        resume(Effect.succeed({ port, cut, close: () => (cut(), server.close()) }))
      })
    }),
    (proxy) => Effect.sync(() => proxy.close())
  )

const stop = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
    child.kill("SIGTERM")
    setTimeout(() => child.kill("SIGKILL"), 5_000).unref()
  })

/** etcd and kube-apiserver on loopback (AlwaysAllow, a static token), stopped with the scope. */
export const apiServerCluster = (assets: string): Effect.Effect<TestCluster, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = yield* Effect.acquireRelease(Effect.sync(() => mkdtempSync(join(tmpdir(), "warmpool-kube-"))), (d) => Effect.sync(() => rmSync(d, { recursive: true, force: true })))
    const [etcdClient, etcdPeer, securePort] = [yield* freePort, yield* freePort, yield* freePort]
    const logs: Array<string> = []
    const run = (command: string, args: ReadonlyArray<string>) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const child = spawn(join(assets, command), args, { stdio: ["ignore", "pipe", "pipe"] })
          const keep = (chunk: Buffer) => {
            logs.push(chunk.toString("utf8"))
            if (logs.length > 200) logs.shift()
          }
          child.stdout?.on("data", keep)
          child.stderr?.on("data", keep)
          return child
        }),
        stop
      )
    yield* run("etcd", [
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`
    ])
    const token = randomUUID()
    writeFileSync(join(dir, "tokens.csv"), `${token},warmpool,warmpool,"system:masters"\n`)
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 })
    writeFileSync(join(dir, "sa.key"), privateKey.export({ type: "pkcs8", format: "pem" }))
    writeFileSync(join(dir, "sa.pub"), publicKey.export({ type: "spki", format: "pem" }))
    // envtest's flag set, trimmed to what a lone API server needs.
    const apiserver = yield* run("kube-apiserver", [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      `--cert-dir=${join(dir, "certs")}`,
      `--secure-port=${securePort}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      // No kubernetes Service endpoints to keep (a loopback address may not be one): envtest does the same.
      "--endpoint-reconciler-type=none",
      "--service-cluster-ip-range=10.0.0.0/24",
      "--allow-privileged=true",
      "--authorization-mode=AlwaysAllow",
      "--disable-admission-plugins=ServiceAccount",
      `--token-auth-file=${join(dir, "tokens.csv")}`,
      `--service-account-key-file=${join(dir, "sa.pub")}`,
      `--service-account-signing-key-file=${join(dir, "sa.key")}`,
      "--service-account-issuer=https://kubernetes.default.svc"
    ])
    const proxy = yield* cuttableProxy(securePort)
    const direct = kubeconfigOf(`https://127.0.0.1:${securePort}`, token, "default", { insecure: true })
    const api = kubeConfigFrom(direct).makeApiClient(CoreV1Api)
    // Ready once it answers and the default namespace exists (its bootstrap controller made it).
    yield* Effect.tryPromise(() => api.readNamespace({ name: "default" })).pipe(
      Effect.retry(Schedule.spaced("500 millis").pipe(Schedule.upTo("90 seconds"), Schedule.whileInput(() => apiserver.exitCode === null))),
      Effect.mapError(() => new Error(`kube-apiserver did not become ready (exit ${apiserver.exitCode}); last output:\n${logs.slice(-20).join("")}`))
    )
    let next = 0
    return {
      name: "kube-apiserver" as const,
      kubeconfig: kubeconfigOf(`https://127.0.0.1:${proxy.port}`, token, "default", { insecure: true }),
      kubeletKubeconfig: direct,
      namespace: Effect.promise(async () => {
        const name = `test-${next++}-${randomUUID().slice(0, 6)}`
        await api.createNamespace({ body: { metadata: { name } } })
        return name
      }),
      dropWatches: Effect.sync(() => proxy.cut())
    }
  })

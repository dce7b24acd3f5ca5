/**
 * `npm run consumer-test`: warmpool as a user gets it. Every publishable package is built and packed, then
 * installed from the tarballs into fresh projects outside the repository (no workspace links), and there:
 *   0. the core alone, with its peers: its node_modules must stay light (no driver, no Postgres binary);
 *   1. the README's library snippet runs as written;
 *   2. a ComputeProvider of the user's own type-checks against the packed types and passes the packed
 *      `@warmpool/reconciler/conformance` suite (vitest in the consumer project);
 *   3. `npx @warmpool/server` (no command: it serves) starts in zero-config mode (embedded Postgres, local instances) and one
 *      instance is claimed over HTTP; then it is stopped.
 * Ends with one line: `consumer test: ok …` or `consumer test: FAILED at <step>: …` (exit 1).
 * This is what catches a file missing from `files`, a type that does not ship, an import of a dev-only package.
 */
import { execFileSync, spawn } from "node:child_process"
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { freePort } from "@warmpool/reconciler"
import { Effect } from "effect"
import { coreInstallMb, installProject, packAll, pinned, root } from "./packing.js"
import { snippetsOf } from "./snippets.js"

/** The most the core may weigh installed with its peers (issue 23; `effect` and `@effect/platform` alone are ~55 MB). */
const CORE_INSTALL_LIMIT_MB = 70

class StepFailed extends Error {
  constructor(readonly step: string, message: string) {
    super(message)
  }
}

const step = async <A>(name: string, body: () => A | Promise<A>): Promise<A> => {
  const started = Date.now()
  try {
    const result = await body()
    console.log(`  ✓ ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`)
    return result
  } catch (error) {
    throw error instanceof StepFailed ? error : new StepFailed(name, error instanceof Error ? error.message : String(error))
  }
}

const run = (command: string, args: Array<string>, cwd: string, timeoutMs = 120_000): string => {
  try {
    return execFileSync(command, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs })
  } catch (error) {
    const { stderr, stdout } = error as { stdout?: string; stderr?: string }
    throw new Error(`${command} ${args.join(" ")} failed:\n${stdout ?? ""}${stderr ?? ""}`.trim())
  }
}

const until = async <A>(what: string, timeoutMs: number, probe: () => Promise<A | undefined>): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

/** A ComputeProvider of the user's own: services are entries of a map. */
const PROVIDER = `import { ComputeProvider, type CreatedService, type CreateServiceRequest, ServiceInfo } from "@warmpool/reconciler"
import { Effect, Layer, Ref } from "effect"

export const MapCompute = Layer.effect(
  ComputeProvider,
  Effect.gen(function*() {
    const services = yield* Ref.make(new Map<string, ServiceInfo>())
    let sequence = 0
    const created = (service: ServiceInfo): CreatedService => ({ serviceId: service.serviceId, url: service.url, deployStatus: service.deployStatus })
    return ComputeProvider.of({
      list: (prefix) => Effect.map(Ref.get(services), (all) => [...all.values()].filter((s) => s.name.startsWith(prefix))),
      create: (request: CreateServiceRequest) =>
        Ref.modify(services, (all) => {
          const existing = [...all.values()].find((s) => s.name === request.name)
          if (existing) return [created(existing), all]
          const service = new ServiceInfo({
            serviceId: \`svc-\${++sequence}\`, name: request.name, url: \`http://\${request.name}.internal\`,
            deployStatus: "SUCCESS", image: request.image, createdAt: new Date()
          })
          return [created(service), new Map(all).set(service.serviceId, service)]
        }),
      destroy: (serviceId) => Ref.update(services, (all) => {
        const rest = new Map(all)
        rest.delete(serviceId)
        return rest
      })
    })
  })
)
`

const PROVIDER_TEST = `import { computeProviderConformance } from "@warmpool/reconciler/conformance"
import { MapCompute } from "../src/provider.js"

computeProviderConformance("a map of the user's", MapCompute)
`

const TSCONFIG = {
  compilerOptions: {
    target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, exactOptionalPropertyTypes: true,
    noEmit: true, types: ["node"], lib: ["ES2022", "DOM"],
    // Checking every library's declarations (Effect's above all) would take a minute: the packed ones are checked
    // by `declarationsResolve` instead.
    skipLibCheck: true
  },
  include: ["src", "test", "snippet.ts"]
}

/**
 * Every module the packed declaration files import is there: a file of the package itself (packed), or a package
 * the manifest names (dependency or peer). With skipLibCheck, tsc would not say so.
 */
const declarationsResolve = (app: string, packages: ReadonlyArray<string>) => {
  const missing: Array<string> = []
  for (const name of packages) {
    const dir = join(app, "node_modules", name)
    const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Record<string, Record<string, string> | undefined>
    const declared = new Set(["dependencies", "peerDependencies"].flatMap((field) => Object.keys(manifest[field] ?? {})))
    const files = readdirSync(join(dir, "dist"), { recursive: true, encoding: "utf8" }).filter((file) => file.endsWith(".d.ts"))
    for (const file of files) {
      const text = readFileSync(join(dir, "dist", file), "utf8")
      for (const [, specifier] of text.matchAll(/(?:from |import\()"([^"]+)"/g)) {
        if (specifier!.startsWith("node:")) continue
        if (specifier!.startsWith(".")) {
          const target = join(dir, "dist", dirname(file), specifier!.replace(/\.js$/, ".d.ts"))
          if (!existsSync(target) && !existsSync(join(target.replace(/\.d\.ts$/, ""), "index.d.ts"))) missing.push(`${name}/dist/${file} → ${specifier}`)
        } else {
          const pkg = specifier!.split("/").slice(0, specifier!.startsWith("@") ? 2 : 1).join("/")
          if (!declared.has(pkg)) missing.push(`${name}/dist/${file} → ${specifier} (not a dependency or peer of ${name})`)
        }
      }
    }
  }
  if (missing.length > 0) throw new Error(`packed declarations import what is not there:\n${missing.join("\n")}`)
}

const serveAndClaim = async (app: string): Promise<string> => {
  const port = await Effect.runPromise(freePort)
  // Zero-config: no DATABASE_URL, no POOL_API_KEY, no platform: only where to listen.
  const child = spawn("npx", ["@warmpool/server"], {
    cwd: app,
    detached: true,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", PORT: String(port), npm_config_update_notifier: "false" },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout.on("data", (d) => (output += d))
  child.stderr.on("data", (d) => (output += d))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  const stop = async () => {
    if (child.exitCode !== null) return
    process.kill(-child.pid!, "SIGTERM")
    const ended = await Promise.race([exited.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 30_000))])
    if (!ended) process.kill(-child.pid!, "SIGKILL")
  }
  try {
    const base = `http://127.0.0.1:${port}`
    const apiKey = await until("the generated POOL_API_KEY line", 120_000, async () => {
      if (child.exitCode !== null) throw new StepFailed("server", `the server exited with ${child.exitCode}:\n${output}`)
      return /POOL_API_KEY \(generated[^)]*\): (\S+)/.exec(output)?.[1]
    })
    await until("an idle instance", 120_000, async () => {
      const counts = (await (await fetch(`${base}/api/pool/counts`)).json()) as { idle?: number }
      return (counts.idle ?? 0) > 0 ? counts : undefined
    })
    const answer = await fetch(`${base}/api/pool/claim`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ agentName: "consumer-test", instructions: "You answer the consumer test." })
    })
    const body = (await answer.json()) as Record<string, unknown>
    if (answer.status !== 200 || typeof body.instanceId !== "string") {
      throw new Error(`the claim answered ${answer.status}: ${JSON.stringify(body)}`)
    }
    return body.instanceId
  } catch (error) {
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n--- server output ---\n${output}`)
  } finally {
    await stop()
  }
}

const main = async () => {
  const started = Date.now()
  const work = mkdtempSync(join(tmpdir(), "warmpool-consumer-"))
  // Reachable by the postgres user the embedded Postgres runs as under root.
  chmodSync(work, 0o755)
  console.log(`consumer test in ${work}`)
  try {
    const tarballs = await step("build and pack every package", () => packAll(join(work, "tarballs")))
    const fromTarball = (name: string) => `file:${tarballs[name]}`

    const coreMb = await step("install the core alone, with its peers", () => {
      const mb = coreInstallMb(join(work, "core-only"), tarballs["@warmpool/reconciler"]!)
      if (mb > CORE_INSTALL_LIMIT_MB) throw new Error(`the core installs ${mb.toFixed(1)} MB (limit ${CORE_INSTALL_LIMIT_MB} MB)`)
      return mb
    })

    const app = join(work, "app")
    await step("install every package from its tarball into a new project", () =>
      installProject(app, {
        ...Object.fromEntries(Object.keys(tarballs).map((name) => [name, fromTarball(name)])),
        ...pinned("effect", "@effect/platform")
      }, { devDependencies: pinned("typescript", "tsx", "vitest", "@effect/vitest", "@types/node") }))

    const librarySnippet = snippetsOf(root, join(root, "README.md")).find((snippet) => snippet.notRun === undefined)
    if (librarySnippet === undefined) throw new StepFailed("library snippet", "README.md has no runnable TypeScript block")
    mkdirSync(join(app, "src"))
    mkdirSync(join(app, "test"))
    writeFileSync(join(app, "snippet.ts"), librarySnippet.code)
    writeFileSync(join(app, "src", "provider.ts"), PROVIDER)
    writeFileSync(join(app, "test", "provider.test.ts"), PROVIDER_TEST)
    writeFileSync(join(app, "tsconfig.json"), JSON.stringify(TSCONFIG, null, 2))

    await step("the packed declaration files import only what ships", () => declarationsResolve(app, Object.keys(tarballs)))
    await step("type-check the snippet and the custom provider against the packed types", () => run("npx", ["tsc", "-p", "."], app, 300_000))
    await step(`run the README's library snippet (${librarySnippet.where})`, () => run("npx", ["tsx", "snippet.ts"], app))
    const conformance = await step("the custom provider passes the packed conformance suite", () => {
      run("npx", ["vitest", "run", "--reporter=json", "--outputFile=vitest.json"], app)
      const report = JSON.parse(readFileSync(join(app, "vitest.json"), "utf8")) as { numPassedTests: number; numFailedTests: number }
      if (report.numPassedTests === 0 || report.numFailedTests > 0) throw new Error(`${report.numPassedTests} passed, ${report.numFailedTests} failed`)
      return report.numPassedTests
    })
    const claimed = await step("npx @warmpool/server (zero-config) and claim one instance", () => serveAndClaim(app))

    console.log(
      `consumer test: ok in ${((Date.now() - started) / 1000).toFixed(0)} s: ${Object.keys(tarballs).length} packages packed; core installs ` +
        `${coreMb.toFixed(1)} MB; README snippet ran; custom provider passed ${conformance} conformance tests; packed server claimed ${claimed}`
    )
  } finally {
    if (process.env.KEEP_CONSUMER_DIR === undefined) rmSync(work, { recursive: true, force: true })
  }
}

main().catch((error: unknown) => {
  const where = error instanceof StepFailed ? error.step : "setup"
  console.log(`consumer test: FAILED at "${where}": ${error instanceof Error ? error.message : String(error)}`)
  process.exit(1)
})

import { describe, expect, it } from "@effect/vitest"
import { ComputeProvider, ServiceUpgrader } from "@warmpool/reconciler"
import { computeProviderConformance } from "@warmpool/reconciler/conformance"
import { ConfigProvider, Context, Duration, Effect, Layer, Logger, Option, Redacted } from "effect"
import { buildClientSchema, parse, validate } from "graphql"
import { existsSync, readFileSync } from "node:fs"
import { resolve } from "node:path"
import {
  formatRailwayCheck,
  operations,
  Railway,
  RailwayCompute,
  RailwayConfig,
  type RailwayOptions,
  railwayCheck,
  registerWebhook,
  webhookRegistrationConfig,
  webhookSecret
} from "../src/index.js"
import { startRailwayEmulator } from "../src/emulator/index.js"

type RailwayEmulator = Effect.Effect.Success<ReturnType<typeof startRailwayEmulator>>
class Emulator extends Context.Tag("test/RailwayEmulator")<Emulator, RailwayEmulator>() {}

const optionsFor = (emulator: RailwayEmulator, overrides: Partial<RailwayOptions> = {}): RailwayOptions => ({
  token: Redacted.make(emulator.accountToken),
  tokenKind: "auto",
  projectId: emulator.projectId,
  environment: { name: "production" },
  runtimeImage: "ghcr.io/xmtplabs/convos-runtime:latest",
  apiUrl: emulator.apiUrl,
  ratePerSecond: 1_000,
  ratePerHour: 100_000,
  pageSize: 100,
  timeout: Duration.seconds(5),
  ...overrides
})

/** The emulator and the provider on it. */
const world = (overrides: Partial<RailwayOptions> = {}, emulatorOptions: Parameters<typeof startRailwayEmulator>[0] = {}) =>
  Layer.unwrapEffect(Effect.map(Emulator, (emulator) => RailwayCompute.layer(optionsFor(emulator, overrides)))).pipe(
    Layer.provideMerge(Layer.scoped(Emulator, startRailwayEmulator({ deployMs: 100, ...emulatorOptions })))
  )

/** A GraphQL call to the emulator as another tool would make it. */
const rawCall = (emulator: RailwayEmulator, query: string, variables: object) =>
  Effect.promise(() =>
    fetch(emulator.apiUrl, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${emulator.accountToken}` },
      body: JSON.stringify({ query, variables })
    }).then((r) => r.json() as Promise<{ data?: Record<string, { id: string }>; errors?: ReadonlyArray<unknown> }>)
  )

const request = (name: string) => ({ name, image: "ghcr.io/xmtplabs/convos-runtime:latest", env: { PORT: "8080", OPENCLAW_GATEWAY_TOKEN: "t".repeat(64) } })

describe("Railway operations", () => {
  const reference = resolve(import.meta.dirname, "../../../../shared/reference/railway/schema.json")
  it.runIf(existsSync(reference))("every operation validates against Railway's published schema", () => {
    const json = JSON.parse(readFileSync(reference, "utf8"))
    const schema = buildClientSchema(json.data ?? json)
    for (const [name, text] of Object.entries(operations)) {
      expect(validate(schema, parse(text)).map((e) => `${name}: ${e.message}`)).toEqual([])
    }
    // The check has teeth: a field Railway does not have fails it.
    expect(validate(schema, parse("query { environment(id: \"x\") { servicesByMagic } }")).length).toBeGreaterThan(0)
  })
  it.skipIf(existsSync(reference))("skipped: ../shared/reference/railway/schema.json is not beside the repository", () => {})
})

computeProviderConformance("railway (emulator)", world())

describe("RailwayCompute", () => {
  it.live("creates in the order that makes the first deploy carry its variables and its public domain", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const compute = yield* ComputeProvider
      const created = yield* Effect.forEach(["convos-agent-a", "convos-agent-b", "convos-agent-c"], (n) => compute.create(request(n)))
      for (const service of emulator.services()) {
        expect(service.deployments).toHaveLength(1)
        const [first] = service.deployments
        expect(first!.variables).toEqual(request(service.name).env)
        expect(first!.domain).toBe(`${service.name}-production.up.railway.app`)
        expect(first!.image).toBe("ghcr.io/xmtplabs/convos-runtime:latest")
      }
      expect(created.map((c) => c.url)).toEqual(["a", "b", "c"].map((x) => `https://convos-agent-${x}-production.up.railway.app`))
      // Deployments progress to SUCCESS over time.
      yield* Effect.sleep(Duration.millis(150))
      expect((yield* compute.list("convos-agent-")).map((s) => s.deployStatus)).toEqual(["SUCCESS", "SUCCESS", "SUCCESS"])
    }).pipe(Effect.provide(world())))

  it.live("a redeploy starts one new deployment on the new image, with the template's variables over the service's own", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const compute = yield* ComputeProvider
      // The compute layer provides the upgrader on its own connection: what the server's upgrade route uses.
      const upgrader = yield* ServiceUpgrader
      const created = yield* compute.create(request("convos-agent-up"))
      emulator.resetCounts()
      yield* upgrader.redeploy(created.serviceId, { image: "ghcr.io/xmtplabs/convos-runtime:v2", env: { PORT: "8080", XMTP_ENV: "production" } })
      const [service] = emulator.services()
      expect(service!.deployments).toHaveLength(2)
      expect(service!.deployments[1]).toMatchObject({
        image: "ghcr.io/xmtplabs/convos-runtime:v2",
        variables: { ...request("convos-agent-up").env, XMTP_ENV: "production" }
      })
      // One request: an environment commit with the image and the variables.
      expect(emulator.operations()).toEqual({ ServiceLaunchBatch: 1 })
      yield* Effect.sleep(Duration.millis(150))
      expect((yield* compute.list("convos-agent-")).map((s) => [s.image, s.deployStatus])).toEqual([["ghcr.io/xmtplabs/convos-runtime:v2", "SUCCESS"]])
    }).pipe(Effect.scoped, Effect.provide(world())))

  it.live("lists one paginated query per page; a failing page fails the whole listing", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const compute = yield* ComputeProvider
      for (let i = 0; i < 7; i++) emulator.addService(`convos-agent-${i}`)
      emulator.addService("postgres")
      emulator.resetCounts()
      expect((yield* compute.list("convos-agent-")).map((s) => s.name).sort()).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `convos-agent-${i}`))
      expect(emulator.operations()).toEqual({ ListServiceInstances: 3 })
      emulator.failPage(1)
      const error = yield* Effect.flip(compute.list("convos-agent-"))
      expect(error._tag).toBe("TransientError")
    }).pipe(Effect.provide(world({ pageSize: 3 }))))

  it.live("a 429 pauses every call for its Retry-After; an HTML 429 page is a rate limit, not a parse crash", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const compute = yield* ComputeProvider
      emulator.inject({ _tag: "Status", status: 429, body: { errors: [{ message: "Too many requests" }] }, headers: { "retry-after": "1" } })
      const started = Date.now()
      yield* Effect.all([compute.list("x"), compute.list("y")], { concurrency: 2 })
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000)
      emulator.inject({ _tag: "Html", status: 429, headers: { "retry-after": "0" } })
      emulator.inject({ _tag: "Html", status: 502 })
      expect(yield* compute.list("x")).toEqual([])
      // Both 429s are counted for /metrics and the dashboard.
      expect((yield* Effect.flatMap(Railway, (r) => r.usage)).rateLimited).toBe(2)
    }).pipe(Effect.provide(world())))

  it.live("a create retried after a timeout finds the service it made instead of making a twin", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const compute = yield* ComputeProvider
      emulator.inject({ _tag: "Delay", ms: 400 }, { times: 1 })
      const created = yield* compute.create(request("convos-agent-slow"))
      const named = emulator.services().filter((s) => s.name === "convos-agent-slow")
      expect(named).toHaveLength(1)
      expect(created.serviceId).toBe(named[0]!.id)
      expect(named[0]!.deployments).toHaveLength(1)
    }).pipe(Effect.provide(world({ timeout: Duration.millis(200) }))))

  it.live("a token revoked while running is reported once and not hammered", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const compute = yield* ComputeProvider
      const logs: Array<string> = []
      const capture = Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => logs.push(String(message))))
      emulator.inject({ _tag: "Status", status: 200, body: { errors: [{ message: "Not Authorized" }] } }, { times: 100 })
      emulator.resetCounts()
      const calls = emulator.calls().length
      for (let i = 0; i < 5; i++) {
        expect((yield* Effect.flip(compute.list("convos-agent-").pipe(Effect.provide(capture))))._tag).toBe("UnauthorizedError")
      }
      expect(emulator.calls().length - calls).toBe(1)
      expect(logs.filter((l) => l.includes("Railway refused the token"))).toHaveLength(1)
    }).pipe(Effect.provide(world())))

  it.effect("a wrong token fails at start with UnauthorizedError", () =>
    Effect.gen(function*() {
      const emulator = yield* startRailwayEmulator()
      const error = yield* Effect.flip(Layer.build(RailwayCompute.layer(optionsFor(emulator, { token: Redacted.make("nope") }))))
      expect(error._tag).toBe("UnauthorizedError")
      expect(String(error)).not.toContain("nope")
    }).pipe(Effect.scoped))

  it.effect("both token kinds work: project tokens in Project-Access-Token, account tokens as Bearer", () =>
    Effect.gen(function*() {
      const emulator = yield* startRailwayEmulator()
      for (const [token, kind] of [[emulator.projectToken, "project"], [emulator.accountToken, "account"]] as const) {
        const { report } = yield* railwayCheck(optionsFor(emulator, { token: Redacted.make(token) }))
        expect(report.tokenKind).toContain(kind)
      }
      const headers = emulator.calls().map((c) => c.authorization)
      expect(headers).toContain(`Bearer ${emulator.accountToken}`)
    }).pipe(Effect.scoped))

  it.effect("resolves RAILWAY_ENVIRONMENT_NAME case-insensitively; an unknown name lists the ones that exist", () =>
    Effect.gen(function*() {
      const emulator = yield* startRailwayEmulator()
      const { report } = yield* railwayCheck(optionsFor(emulator, { environment: { name: "scaling" } }))
      expect(report.environment).toBe("Scaling (env-scaling)")
      const error = yield* Effect.flip(railwayCheck(optionsFor(emulator, { environment: { name: "staging" } })))
      expect(error.message).toContain("production (env-production), Scaling (env-scaling)")
    }).pipe(Effect.scoped))

  it.effect("railway:check prints the token kind, project, environment, services and rate-limit headers", () =>
    Effect.gen(function*() {
      const emulator = yield* startRailwayEmulator()
      emulator.addService("convos-agent-x")
      const lines = formatRailwayCheck(yield* railwayCheck(optionsFor(emulator)))
      expect(lines.join("\n")).toMatch(/token: +account or workspace token \(Bearer\)\nproject: +convos-agents \(project-1\)\nenvironment: +production \(env-production\)\nservices: +1\nrate limit: +x-ratelimit-limit=1000/)
    }).pipe(Effect.scoped))

  it.effect("reads the seed's RAILWAY_* variables; one of the environment variables is required", () =>
    Effect.gen(function*() {
      const fromEnv = (env: Record<string, string>) => Effect.withConfigProvider(RailwayConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))
      const base = { RAILWAY_API_TOKEN: "t", RAILWAY_PROJECT_ID: "p" }
      const config = yield* fromEnv({ ...base, RAILWAY_ENVIRONMENT_NAME: "dev" })
      expect(config).toMatchObject({ environment: { name: "dev" }, runtimeImage: "ghcr.io/xmtplabs/convos-runtime:latest", apiUrl: "https://backboard.railway.com/graphql/v2", ratePerSecond: 10, ratePerHour: 1000, tokenKind: "auto" })
      expect((yield* fromEnv({ ...base, RAILWAY_ENVIRONMENT_ID: "e1", RAILWAY_ENVIRONMENT_NAME: "dev" })).environment).toEqual({ id: "e1" })
      expect(String(yield* Effect.flip(fromEnv(base)))).toContain("RAILWAY_ENVIRONMENT_ID or RAILWAY_ENVIRONMENT_NAME")
    }))

  it.live("creates that arrive together share two requests, and each first deploy still carries its variables, domain and image", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const compute = yield* ComputeProvider
      emulator.resetCounts()
      const names = Array.from({ length: 12 }, (_, i) => `convos-agent-b${i}`)
      const created = yield* Effect.forEach(names, (n) => compute.create(request(n)), { concurrency: "unbounded" })
      expect(emulator.operations()).toEqual({ ServiceCreateBatch: 1, ServiceLaunchBatch: 1 })
      expect(new Set(created.map((c) => c.serviceId)).size).toBe(12)
      for (const service of emulator.services()) {
        expect(service.deployments).toHaveLength(1)
        expect(service.deployments[0]).toMatchObject({ variables: request(service.name).env, domain: `${service.name}-production.up.railway.app`, image: "ghcr.io/xmtplabs/convos-runtime:latest" })
      }
      const usage = yield* Effect.flatMap(Railway, (r) => r.usage)
      expect(usage.byOperation).toMatchObject({ serviceCreateBatch: 1, serviceLaunchBatch: 1 })
      expect(usage.requestsLastHour).toBe(emulator.calls().length)
      expect(usage.lastHeaders["x-ratelimit-limit"]).toBe("1000")
    }).pipe(Effect.provide(world())))

  it.live("a create for a half-made service (made, never launched) completes it; one that exists already is returned, not twinned", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const compute = yield* ComputeProvider
      const bare = yield* rawCall(emulator, "mutation M($i: ServiceCreateInput!) { serviceCreate(input: $i) { id } }", {
        i: { projectId: emulator.projectId, environmentId: "env-production", name: "convos-agent-half" }
      })
      const done = emulator.addService("convos-agent-done")
      const [half, existing, fresh] = yield* Effect.forEach(["convos-agent-half", "convos-agent-done", "convos-agent-new"], (n) => compute.create(request(n)), { concurrency: "unbounded" })
      expect(half!.serviceId).toBe(bare.data!.serviceCreate!.id)
      expect(existing!.serviceId).toBe(done.id)
      expect(fresh!.url).toBe("https://convos-agent-new-production.up.railway.app")
      const byName = new Map(emulator.services().map((s) => [s.name, s]))
      expect(emulator.services()).toHaveLength(3)
      expect(byName.get("convos-agent-done")!.deployments).toHaveLength(1)
      for (const name of ["convos-agent-half", "convos-agent-new"]) {
        const [first, ...more] = byName.get(name)!.deployments
        expect(more).toEqual([])
        expect(first).toMatchObject({ variables: request(name).env, domain: `${name}-production.up.railway.app` })
      }
    }).pipe(Effect.provide(world())))

  it.live("when the budget runs low, refills wait for company (by Railway's headers), and not before", () =>
    Effect.gen(function*() {
      const compute = yield* ComputeProvider
      const delay = Effect.flatMap(Effect.fromNullable(compute.refillDelay), (d) => d)
      // Railway's headers say 12 an hour: with 2 spent (connecting) the budget is ample...
      expect(Duration.toMillis(yield* delay)).toBe(0)
      // ...with 10 spent, under a quarter is left.
      for (let i = 0; i < 8; i++) yield* compute.list("x")
      expect(Duration.toMillis(yield* delay)).toBe(600)
    }).pipe(Effect.provide(world({ tightCreateWindow: Duration.millis(600) }, { hourlyLimit: 12 }))))

  it.live("registers one webhook rule: found before created, updated when the secret changes, never duplicated", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator
      const railway = yield* Railway
      const register = (url: string) => registerWebhook(railway, { workspaceId: emulator.workspaceId, url, sameHookPrefix: "https://pool.example/webhooks/railway/" })
      expect(yield* register("https://pool.example/webhooks/railway/s1")).toBe("created")
      expect(yield* register("https://pool.example/webhooks/railway/s1")).toBe("unchanged")
      expect(yield* register("https://pool.example/webhooks/railway/s2")).toBe("updated")
      const rules = emulator.rules()
      expect(rules).toHaveLength(1)
      expect(rules[0]!.channels.map((c) => c.config)).toEqual([{ type: "webhook", url: "https://pool.example/webhooks/railway/s2" }])
      expect(rules[0]!.eventTypes).toContain("Deployment.crashed")
      expect(String(yield* Effect.flip(registerWebhook(railway, { workspaceId: "nope", url: "https://x/webhooks/railway/a", sameHookPrefix: "https://x/" })))).toContain("not found")
    }).pipe(Effect.provide(world())))

  it.effect("railway:check --register-webhook registers from POOL_PUBLIC_URL and RAILWAY_WORKSPACE_ID, and never prints the secret", () =>
    Effect.gen(function*() {
      const emulator = yield* startRailwayEmulator()
      const env = (vars: Record<string, string>) => Effect.withConfigProvider(webhookRegistrationConfig, ConfigProvider.fromMap(new Map(Object.entries(vars))))
      const register = yield* env({ POOL_PUBLIC_URL: "https://pool.example/", RAILWAY_WORKSPACE_ID: emulator.workspaceId, POOL_API_KEY: "k".repeat(32) })
      const secret = Redacted.value(register.secret)
      // Derived from the key, but not the key.
      expect(secret).toBe(Redacted.value(webhookSecret({ secret: Option.none() }, Redacted.make("k".repeat(32)))))
      expect(secret).not.toContain("kkkk")
      const text = formatRailwayCheck(yield* railwayCheck(optionsFor(emulator), register)).join("\n")
      expect(text).toContain("webhook:      created (https://pool.example/webhooks/railway/<secret>)")
      expect(text).not.toContain(secret)
      expect(emulator.rules()[0]!.channels[0]!.config).toEqual({ type: "webhook", url: `https://pool.example/webhooks/railway/${secret}` })
      expect(formatRailwayCheck(yield* railwayCheck(optionsFor(emulator), register)).join("\n")).toContain("webhook:      unchanged")
      expect(yield* Effect.flip(env({ POOL_PUBLIC_URL: "https://pool.example", POOL_API_KEY: "k" }))).toContain("RAILWAY_WORKSPACE_ID")
      expect(yield* Effect.flip(env({ POOL_PUBLIC_URL: "https://pool.example", RAILWAY_WORKSPACE_ID: "w" }))).toContain("POOL_API_KEY")
      expect(String(yield* Effect.flip(env({ POOL_PUBLIC_URL: "ftp://x", RAILWAY_WORKSPACE_ID: "w", POOL_API_KEY: "k" })))).toContain("http(s) URL")
    }).pipe(Effect.scoped))
})

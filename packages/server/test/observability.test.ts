/**
 * Logs and traces as an operator configures them: JSON lines with LOG_FORMAT=json, the level from LOG_LEVEL,
 * and a claim's spans exported over OTLP/HTTP to a collector (here a loopback server that receives `/v1/traces`).
 */
import { HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Controller, PoolSpec } from "@warmpool/reconciler"
import { inMemoryConvosServices } from "@warmpool/providers-convos/testing"
import { ConfigProvider, Console, Effect, Either, Layer, Logger, LogLevel, Option, Redacted } from "effect"
import { createServer, type IncomingMessage } from "node:http"
import { httpApiLayer, ObservabilityConfig, observabilityLayer, type ObservabilitySettings } from "../src/index.js"

const KEY = "otlp-test-key-0123456789"
const spec = new PoolSpec({ name: "pool", namePrefix: "convos-agent-", minIdle: 1, maxTotal: 3, template: { image: "img", env: {} } })

const settingsFrom = (env: Record<string, string>) =>
  Effect.runSync(Effect.either(Effect.withConfigProvider(ObservabilityConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))))

/** Runs `effect` with the observability the settings ask for, and returns what it printed. */
const printed = (settings: ObservabilitySettings, effect: Effect.Effect<void>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const console = yield* Console.consoleWith((real) => Effect.succeed({ ...real, unsafe: { ...real.unsafe, log: (...args: ReadonlyArray<unknown>) => lines.push(args.map(String).join(" ")) } }))
    yield* effect.pipe(
      Effect.provide(observabilityLayer(settings)),
      // As `NodeRuntime.runMain` does: the pretty logger in place of the default one.
      Effect.provide(Logger.replace(Logger.defaultLogger, Logger.prettyLoggerDefault)),
      Effect.withConsole(console)
    )
    return lines
  })

interface OtlpSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly name: string
}

interface Collector {
  readonly url: string
  readonly spans: Array<OtlpSpan>
  /** `METHOD path content-type` of every request. */
  readonly requests: Array<string>
  readonly close: () => Promise<void>
}

/** A loopback OTLP/HTTP collector that keeps the spans of every export it receives. */
const collector = Effect.acquireRelease(
  Effect.async<Collector>((resume) => {
    const spans: Array<OtlpSpan> = []
    const requests: Array<string> = []
    const server = createServer((request: IncomingMessage, response) => {
      let body = ""
      request.on("data", (chunk) => (body += chunk))
      request.on("end", () => {
        requests.push(`${request.method} ${request.url} ${request.headers["content-type"]}`)
        const json = JSON.parse(body) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<OtlpSpan> }> }> }
        for (const resource of json.resourceSpans) for (const scope of resource.scopeSpans) spans.push(...scope.spans)
        response.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
    })
    server.listen(0, "127.0.0.1", () =>
      resume(Effect.succeed({
        url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
        spans,
        requests,
        close: () => new Promise<void>((done) => server.close(() => done()))
      })))
  }),
  (c) => Effect.promise(c.close)
)

describe("observability", () => {
  it("reads LOG_FORMAT, LOG_LEVEL and the standard OTLP endpoints, and says what is wrong", () => {
    const defaults = settingsFrom({})
    expect(defaults).toEqual(Either.right({ logFormat: "pretty", logLevel: LogLevel.Info, tracesUrl: Option.none(), serviceName: "warmpool" }))
    const set = settingsFrom({ LOG_FORMAT: "json", LOG_LEVEL: "Debug", OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/", OTEL_SERVICE_NAME: "pool-eu" })
    expect(set).toEqual(Either.right({ logFormat: "json", logLevel: LogLevel.Debug, tracesUrl: Option.some("http://collector:4318/v1/traces"), serviceName: "pool-eu" }))
    // The signal's own endpoint is used as it is, and wins.
    const traces = settingsFrom({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:4318", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://b:4318/custom" })
    expect(Either.map(traces, (s) => s.tracesUrl)).toEqual(Either.right(Option.some("http://b:4318/custom")))
    const bad = settingsFrom({ LOG_FORMAT: "xml", OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" })
    expect(Either.isLeft(bad) && String(bad.left)).toMatch(/LOG_FORMAT/)
    expect(Either.isLeft(settingsFrom({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }))).toBe(true)
  })

  it.live("LOG_FORMAT=json prints one JSON object a line, with the annotations; LOG_LEVEL drops what is below it", () =>
    Effect.gen(function*() {
      const settings = { logFormat: "json", logLevel: LogLevel.Info, tracesUrl: Option.none(), serviceName: "warmpool" } as const
      const debug = yield* printed({ ...settings, logFormat: "text", logLevel: LogLevel.Debug }, Effect.logDebug("shown"))
      expect(debug).toEqual([expect.stringMatching(/level=DEBUG .*message=shown/)])
      const lines = yield* printed(settings, Effect.logDebug("hidden").pipe(Effect.zipRight(Effect.logInfo("pass 3: 1 Create in 4 ms")), Effect.annotateLogs({ pool: "eu", pass: 3 })))
      expect(lines).toHaveLength(1)
      expect(JSON.parse(lines[0]!)).toMatchObject({ message: "pass 3: 1 Create in 4 ms", logLevel: "INFO", annotations: { pool: "eu", pass: 3 } })
    }))

  it.scopedLive("with an OTLP endpoint, a claim's trace reaches the collector: the HTTP request and the claim under it", () =>
    Effect.gen(function*() {
      const otlp = yield* collector
      const settings: ObservabilitySettings = { logFormat: "text", logLevel: LogLevel.Warning, tracesUrl: Option.some(`${otlp.url}/v1/traces`), serviceName: "warmpool-test" }
      const claimed = yield* Effect.scoped(
        Effect.gen(function*() {
          const server = yield* HttpServer.HttpServer
          const controller = yield* Controller
          yield* Effect.repeatN(controller.runPass, 1)
          const port = (server.address as HttpServer.TcpAddress).port
          const response = yield* Effect.promise(() =>
            fetch(`http://127.0.0.1:${port}/api/pool/claim`, {
              method: "POST",
              headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
              body: JSON.stringify({ agentName: "traced", instructions: "" })
            }))
          expect(response.status).toBe(200)
          return (yield* Effect.promise(() => response.json())) as { instanceId: string }
        }).pipe(
          Effect.provide(
            httpApiLayer({ environment: "dev", apiKey: Redacted.make(KEY) }).pipe(
              Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
              Layer.provideMerge(Controller.layer(spec, { background: false })),
              Layer.provideMerge(inMemoryConvosServices())
            )
          ),
          // Closing the scope shuts the SDK down, which flushes the batch of spans.
          Effect.provide(observabilityLayer(settings))
        )
      )
      expect(claimed.instanceId).toBeTruthy()
      expect(otlp.requests.every((r) => r.startsWith("POST /v1/traces application/json"))).toBe(true)
      const claim = otlp.spans.find((s) => s.name === "Controller.claim")
      expect(claim, `spans received: ${otlp.spans.map((s) => s.name).join(", ")}`).toBeDefined()
      // Up the tree from the claim: the HTTP server's span for the request is its ancestor, in the same trace.
      const byId = new Map(otlp.spans.map((s) => [s.spanId, s]))
      const ancestors: Array<string> = []
      for (let at = claim!.parentSpanId; at && byId.has(at); at = byId.get(at)!.parentSpanId) ancestors.push(byId.get(at)!.name)
      expect(ancestors.some((name) => /^http\.server POST/.test(name))).toBe(true)
      expect(ancestors.every((name) => otlp.spans.some((s) => s.name === name && s.traceId === claim!.traceId))).toBe(true)
      // And the reconcile passes are traced too.
      expect(otlp.spans.some((s) => s.name === "Controller.pass")).toBe(true)
    }), 30_000)
})

/**
 * What the server says, and where: the log format and level (LOG_FORMAT, LOG_LEVEL) and, when an OTLP
 * endpoint is set (the standard OTEL_EXPORTER_OTLP_ENDPOINT), every span the code makes (`Effect.fn`,
 * `withSpan`, the HTTP server's and SQL client's own) exported over OTLP/HTTP, so a claim's trace can be
 * followed end to end in Datadog, Honeycomb, Grafana Tempo or any OpenTelemetry collector.
 */
import { Config, Effect, FiberRef, HashSet, Layer, Logger, LogLevel, Option } from "effect"

/** `pretty`: coloured, annotations on lines of their own (what `npm start` has always shown); `text`: one line, `timestamp=… level=… message=…`. */
export type LogFormat = "pretty" | "text" | "json" | "logfmt"

export interface ObservabilitySettings {
  readonly logFormat: LogFormat
  readonly logLevel: LogLevel.LogLevel
  /** Where spans go (the full `/v1/traces` URL); none: spans stay in the process. */
  readonly tracesUrl: Option.Option<string>
  readonly serviceName: string
}

/** The OTLP/HTTP traces URL the OpenTelemetry spec derives: the signal's own endpoint as is, or the base one + `/v1/traces`. */
export const tracesUrlOf = (endpoints: { readonly traces: Option.Option<string>; readonly base: Option.Option<string> }) =>
  Option.orElse(endpoints.traces, () => Option.map(endpoints.base, (base) => `${base.replace(/\/+$/, "")}/v1/traces`))

const url = (name: string) =>
  Config.option(
    Config.string(name).pipe(
      Config.validate({ message: "must be an http(s) URL", validation: (value) => /^https?:\/\/[^\s/]+/.test(value) })
    )
  )

export const ObservabilityConfig: Config.Config<ObservabilitySettings> = Config.all({
  logFormat: Config.literal("pretty", "text", "json", "logfmt")("LOG_FORMAT").pipe(Config.withDefault("pretty" as const)),
  logLevel: Config.logLevel("LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info)),
  tracesUrl: Config.all({ traces: url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), base: url("OTEL_EXPORTER_OTLP_ENDPOINT") }).pipe(Config.map(tracesUrlOf)),
  serviceName: Config.string("OTEL_SERVICE_NAME").pipe(Config.withDefault("warmpool"))
})

const loggers: Record<LogFormat, Logger.Logger<unknown, void>> = {
  pretty: Logger.prettyLoggerDefault,
  text: Logger.defaultLogger,
  json: Logger.withConsoleLog(Logger.jsonLogger),
  logfmt: Logger.withConsoleLog(Logger.logfmtLogger)
}

/** The one console logger of the format, in place of Effect's default and the pretty one `runMain` installs. */
const consoleLogger = (format: LogFormat) =>
  Layer.scopedDiscard(
    Effect.locallyScopedWith(FiberRef.currentLoggers, (set) =>
      set.pipe(HashSet.remove(Logger.defaultLogger), HashSet.remove(Logger.prettyLoggerDefault), HashSet.add(loggers[format])))
  )

/**
 * The logger and the tracer the settings ask for. Provide it to the whole program (`Effect.provide`), so
 * every fiber the server forks (the reconcile loop, each request) inherits both.
 */
export const observabilityLayer = (settings: ObservabilitySettings): Layer.Layer<never> =>
  Layer.mergeAll(
    consoleLogger(settings.logFormat),
    Logger.minimumLogLevel(settings.logLevel),
    Option.match(settings.tracesUrl, {
      onNone: () => Layer.empty,
      onSome: (url) =>
        // The SDK is loaded only when spans are exported: a server without a collector does not carry it in memory.
        Layer.unwrapEffect(Effect.promise(async () => {
          const [{ NodeSdk }, { OTLPTraceExporter }, { BatchSpanProcessor }] = await Promise.all([
            import("@effect/opentelemetry"),
            import("@opentelemetry/exporter-trace-otlp-http"),
            import("@opentelemetry/sdk-trace-base")
          ])
          // Headers (API keys of the vendor) come from OTEL_EXPORTER_OTLP_HEADERS, read by the exporter itself.
          // Spans are sent in batches; shutting the layer down flushes the last ones.
          return NodeSdk.layer(() => ({
            resource: { serviceName: settings.serviceName },
            spanProcessor: new BatchSpanProcessor(new OTLPTraceExporter({ url }))
          })).pipe(Layer.discard)
        }))
    })
  )

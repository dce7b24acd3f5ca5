/**
 * The server's configuration: every environment variable of the seed pool manager with its default, plus
 * warmpool's few. An invalid value stops the process at start with one line per problem.
 */
import { RailwayWebhookConfig, type WebhookSettings } from "@warmpool/providers-railway"
import { Config, ConfigError, Either, Option, Redacted } from "effect"

export type Provider = "railway" | "local" | "kubernetes"

export interface ServerSettings {
  readonly port: number
  readonly apiKey: Option.Option<Redacted.Redacted<string>>
  readonly environment: "staging" | "dev" | "production"
  readonly provider: Provider
  readonly databaseUrl: Option.Option<Redacted.Redacted<string>>
  /** Local state: the embedded Postgres and the local provider's processes. */
  readonly dataDir: string
  readonly pool: {
    readonly name: string
    readonly namePrefix: string
    readonly minIdle: number
    readonly maxTotal: number
    readonly stuckTimeoutMs: number
    /** New instances a rollout may make beyond the warm target at once. */
    readonly maxSurge: number
    readonly tickIntervalMs: number
    /** Adaptive sizing (POOL_AUTOSCALE=on); none keeps a fixed pool of minIdle. */
    readonly autoscale: Option.Option<{
      readonly targetMissRate: number
      readonly maxIdle: Option.Option<number>
      readonly scaleDownAfterMs: number
    }>
  }
  /** On SIGTERM/SIGINT, how long the pass, creates and claims in flight may take to finish. */
  readonly shutdownGraceMs: number
  /**
   * POOL_PROVISION_TIMEOUT_MS: how long a claim waits for an instance's `/pool/provision`. A runtime silent that long
   * is marked crashed and the claim answered 502 at once (not tried again on another instance).
   */
  readonly provisionTimeoutMs: number
  readonly runtimeImage: string
  /** Declared pools: `POOLS` (JSON) or `POOLS_FILE` (path to JSON or YAML); decoded by `poolSpecsOf`. */
  readonly pools: { readonly json: Option.Option<string>; readonly file: Option.Option<string> }
  /** Railway webhooks: RAILWAY_WEBHOOK_SECRET, POOL_PUBLIC_URL, RAILWAY_WORKSPACE_ID. */
  readonly webhooks: WebhookSettings
  /** Passed into every instance's environment (DESIGN §4). */
  readonly agentEnv: Readonly<Record<string, string>>
  /** PROTECTED_INSTANCES: ids never claimed, killed, drained, rolled out or deleted. */
  readonly protectedInstances: ReadonlyArray<string>
  /** POOL_CLAIM_KEYS: keys that may claim (and read counts), nothing else. */
  readonly claimKeys: ReadonlyArray<Redacted.Redacted<string>>
  /** What `GET /api/pool/info` and `/version` say of this deployment, from the platform's variables. */
  readonly deployment: Deployment
}

export interface Deployment {
  /** POOL_ENVIRONMENT, else RAILWAY_ENVIRONMENT_NAME, else "local" (as the replaced system says). */
  readonly environment: string
  /** RAILWAY_SOURCE_BRANCH, else RAILWAY_GIT_BRANCH, else "unknown". */
  readonly branch: string
  /** RAILWAY_SERVICE_ID, else "". */
  readonly railwayServiceId: string
}

/** A comma-separated list: blanks around items and empty items dropped. */
const commaList = (name: string) =>
  Config.string(name).pipe(
    Config.withDefault(""),
    Config.map((text) => text.split(",").map((item) => item.trim()).filter((item) => item !== ""))
  )

/** The first of `names` that is set and not empty, else `fallback`. */
const firstSet = (names: ReadonlyArray<string>, fallback: string) =>
  Config.all(names.map((name) => Config.option(Config.string(name)))).pipe(
    Config.map((values) => values.flatMap((v) => (Option.isSome(v) && v.value !== "" ? [v.value] : []))[0] ?? fallback)
  )

const whole = (name: string, min: number) =>
  Config.integer(name).pipe(Config.validate({ message: `must be a whole number ≥ ${min}`, validation: (n) => n >= min }))

const wholeNumber = (name: string, fallback: number, min: number) => whole(name, min).pipe(Config.withDefault(fallback))

/** Agent keys handed to instances as they are (absent ones are left out). */
const AGENT_KEYS = [
  "OPENCLAW_PRIMARY_MODEL",
  "XMTP_ENV",
  "AGENTMAIL_API_KEY",
  "BANKR_API_KEY",
  "TELNYX_API_KEY",
  "TELNYX_PHONE_NUMBER",
  "TELNYX_MESSAGING_PROFILE_ID"
] as const

/** TICK_INTERVAL_MS's default when Railway webhooks are registered, and with the Kubernetes provider's watch. */
export const WEBHOOK_TICK_INTERVAL_MS = 300_000

export const ServerConfig: Config.Config<ServerSettings> = Config.all({
  port: Config.port("PORT").pipe(Config.withDefault(3001)),
  apiKey: Config.option(Config.redacted("POOL_API_KEY")),
  environment: Config.literal("staging", "dev", "production")("POOL_ENVIRONMENT").pipe(Config.withDefault("dev" as const)),
  // Either token variable picks Railway: RAILWAY_API_TOKENS alone is enough.
  railwayToken: Config.option(Config.redacted("RAILWAY_API_TOKEN").pipe(Config.orElse(() => Config.redacted("RAILWAY_API_TOKENS")))),
  providerChoice: Config.option(Config.literal("railway", "local", "kubernetes")("POOL_PROVIDER")),
  databaseUrl: Config.option(Config.redacted("DATABASE_URL")),
  dataDir: Config.string("WARMPOOL_DATA_DIR").pipe(Config.withDefault(".warmpool")),
  pool: Config.all({
    name: Config.string("POOL_NAME").pipe(Config.withDefault("default")),
    namePrefix: Config.string("POOL_NAME_PREFIX").pipe(Config.withDefault("convos-agent-")),
    minIdle: wholeNumber("POOL_MIN_IDLE", 3, 0),
    maxTotal: wholeNumber("POOL_MAX_TOTAL", 50, 1),
    stuckTimeoutMs: wholeNumber("POOL_STUCK_TIMEOUT_MS", 900_000, 1),
    maxSurge: wholeNumber("POOL_MAX_SURGE", 1, 1),
    tickIntervalMs: Config.option(whole("TICK_INTERVAL_MS", 100)),
    autoscale: Config.all({
      on: Config.literal("on", "off", "true", "false")("POOL_AUTOSCALE").pipe(Config.withDefault("off" as const)),
      targetMissRate: Config.number("POOL_TARGET_MISS_RATE").pipe(
        Config.validate({ message: "must be a number between 0 and 1 (exclusive)", validation: (n) => n > 0 && n < 1 }),
        Config.withDefault(0.01)
      ),
      maxIdle: Config.option(whole("POOL_MAX_IDLE", 0)),
      scaleDownAfterMs: wholeNumber("POOL_SCALE_DOWN_AFTER_MS", 600_000, 1)
    }).pipe(Config.map(({ on, ...autoscale }) => (on === "on" || on === "true" ? Option.some(autoscale) : Option.none())))
  }),
  pools: Config.all({ json: Config.option(Config.string("POOLS")), file: Config.option(Config.string("POOLS_FILE")) }),
  webhooks: RailwayWebhookConfig,
  shutdownGraceMs: wholeNumber("SHUTDOWN_GRACE_MS", 20_000, 0),
  provisionTimeoutMs: wholeNumber("POOL_PROVISION_TIMEOUT_MS", 60_000, 1),
  runtimeImage: Config.string("RAILWAY_RUNTIME_IMAGE").pipe(Config.withDefault("ghcr.io/xmtplabs/convos-runtime:latest")),
  agentEnv: Config.all(Object.fromEntries(AGENT_KEYS.map((key) => [key, Config.option(Config.string(key))]))),
  protectedInstances: commaList("PROTECTED_INSTANCES"),
  claimKeys: commaList("POOL_CLAIM_KEYS").pipe(Config.map((keys) => keys.map((key) => Redacted.make(key)))),
  deployment: Config.all({
    environment: firstSet(["POOL_ENVIRONMENT", "RAILWAY_ENVIRONMENT_NAME"], "local"),
    branch: firstSet(["RAILWAY_SOURCE_BRANCH", "RAILWAY_GIT_BRANCH"], "unknown"),
    railwayServiceId: firstSet(["RAILWAY_SERVICE_ID"], "")
  })
}).pipe(
  Config.map(({ agentEnv, pool, providerChoice, railwayToken, ...rest }): ServerSettings => {
    const provider = Option.getOrElse(providerChoice, () => (Option.isSome(railwayToken) ? "railway" : "local" as const))
    // Webhooks (Railway's) and the Pod watch (Kubernetes') say when something happens, so the tick is only a
    // safety net: every 5 minutes unless set.
    const webhooksOn = provider === "kubernetes" ||
      (provider === "railway" && Option.isSome(rest.webhooks.publicUrl) && Option.isSome(rest.webhooks.workspaceId))
    return {
      ...rest,
      provider,
      pool: { ...pool, tickIntervalMs: Option.getOrElse(pool.tickIntervalMs, () => (webhooksOn ? WEBHOOK_TICK_INTERVAL_MS : 30_000)) },
      agentEnv: Object.fromEntries(Object.entries(agentEnv).flatMap(([k, v]) => (Option.isSome(v) ? [[k, v.value]] : [])))
    }
  })
)

/** A config error as lines, one per problem: `POOL_MIN_IDLE: must be a whole number ≥ 0`. */
export const configErrorLines = (error: ConfigError.ConfigError): ReadonlyArray<string> =>
  ConfigError.reduceWithContext(error, undefined, {
    andCase: (_, left: ReadonlyArray<string>, right: ReadonlyArray<string>) => [...left, ...right],
    orCase: (_, left: ReadonlyArray<string>, right: ReadonlyArray<string>) => [...left, ...right],
    invalidDataCase: (_, path, message) => [`${path.join(".")}: ${message}`],
    missingDataCase: (_, path, message) => [`${path.join(".")}: ${message}`],
    sourceUnavailableCase: (_, path, message) => [`${path.join(".")}: ${message}`],
    unsupportedCase: (_, path, message) => [`${path.join(".")}: ${message}`]
  }).filter((line, i, all) => all.indexOf(line) === i)

export const eitherLines = <A>(result: Either.Either<A, ConfigError.ConfigError>) => Either.mapLeft(result, configErrorLines)

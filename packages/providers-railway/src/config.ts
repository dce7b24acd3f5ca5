import { Config, ConfigError, Duration, Either, Option, type Redacted } from "effect"

/** Account and workspace tokens go in `Authorization: Bearer`; project tokens in `Project-Access-Token`. */
export type TokenKind = "account" | "project"

export interface RailwayOptions {
  readonly token: Redacted.Redacted<string>
  /** `auto` asks Railway once which kind the token is. */
  readonly tokenKind: TokenKind | "auto"
  readonly projectId: string
  /** One of the two; the name is resolved to an id once, case-insensitively. */
  readonly environment: { readonly id: string } | { readonly name: string }
  readonly runtimeImage: string
  readonly apiUrl: string
  /** Client-side limits shared by every call (Railway's Hobby plan: 10/s, 1,000/h). */
  readonly ratePerSecond: number
  readonly ratePerHour: number
  /** Services per listing page. */
  readonly pageSize: number
  /** Per call. */
  readonly timeout: Duration.Duration
  /** How long a create waits for others to share its requests. Default 100 ms. */
  readonly createWindow?: Duration.DurationInput
  /** How long refills wait for more claims when less than a quarter of the hourly budget is left. Default 8 s. */
  readonly tightCreateWindow?: Duration.DurationInput
  /** Most creates in one batch. Default 50. */
  readonly createBatchMax?: number
}

export const DEFAULT_RUNTIME_IMAGE = "ghcr.io/xmtplabs/convos-runtime:latest"
export const DEFAULT_API_URL = "https://backboard.railway.com/graphql/v2"

const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: `${name} must be a whole number ≥ 1`, validation: (n) => n >= 1 }),
    Config.withDefault(fallback)
  )

/** The seed's RAILWAY_* variables, plus RAILWAY_API_URL, RAILWAY_TOKEN_KIND and the client's limits. */
export const RailwayConfig: Config.Config<RailwayOptions> = Config.all({
  token: Config.redacted("RAILWAY_API_TOKEN"),
  tokenKind: Config.literal("auto", "account", "project")("RAILWAY_TOKEN_KIND").pipe(Config.withDefault("auto" as const)),
  projectId: Config.nonEmptyString("RAILWAY_PROJECT_ID"),
  environment: Config.all({
    id: Config.option(Config.nonEmptyString("RAILWAY_ENVIRONMENT_ID")),
    name: Config.option(Config.nonEmptyString("RAILWAY_ENVIRONMENT_NAME"))
  }).pipe(
    Config.mapOrFail(({ id, name }): Either.Either<RailwayOptions["environment"], ConfigError.ConfigError> =>
      Option.isSome(id)
        ? Either.right({ id: id.value })
        : Option.isSome(name)
        ? Either.right({ name: name.value })
        : Either.left(ConfigError.MissingData(["RAILWAY_ENVIRONMENT_ID"], "set RAILWAY_ENVIRONMENT_ID or RAILWAY_ENVIRONMENT_NAME"))
    )
  ),
  runtimeImage: Config.string("RAILWAY_RUNTIME_IMAGE").pipe(Config.withDefault(DEFAULT_RUNTIME_IMAGE)),
  apiUrl: Config.string("RAILWAY_API_URL").pipe(Config.withDefault(DEFAULT_API_URL)),
  ratePerSecond: positiveInt("RAILWAY_RATE_PER_SECOND", 10),
  ratePerHour: positiveInt("RAILWAY_RATE_PER_HOUR", 1_000),
  pageSize: positiveInt("RAILWAY_PAGE_SIZE", 100),
  timeout: Config.duration("RAILWAY_TIMEOUT").pipe(Config.withDefault(Duration.seconds(20)))
})

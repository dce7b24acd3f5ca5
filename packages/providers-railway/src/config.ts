import { Config, ConfigError, Duration, Either, Option, Redacted } from "effect"

/** Account and workspace tokens go in `Authorization: Bearer`; project tokens in `Project-Access-Token`. */
export type TokenKind = "account" | "project"

/**
 * Where the pool's services live:
 * - `shared`: every service in `projectId` (one private network, one project's service limit);
 * - `project-per-instance`: a project per instance, named after it, in the workspace (`workspaceId`). With
 *   `spareProjects` (default 0, as the replaced system: nothing but the instances' projects), that many empty
 *   projects (named `projectPrefix` + a random suffix, default prefix `warmpool-spare-`) wait for the next
 *   creates, which take one and name it after their instance: a refill then skips the `projectCreate` Railway
 *   limits per token, and the next spare rides along in a launch request;
 * - `sharded`: up to `servicesPerProject` services per project, projects made and retired as the pool grows
 *   and shrinks, named `projectPrefix` + a number.
 */
export type Placement =
  | { readonly _tag: "shared" }
  | { readonly _tag: "project-per-instance"; readonly workspaceId: string; readonly spareProjects?: number; readonly projectPrefix?: string }
  | { readonly _tag: "sharded"; readonly workspaceId: string; readonly servicesPerProject: number; readonly projectPrefix: string }

/** A volume for every instance, attached before its first deploy. */
export interface VolumeOptions {
  readonly mountPath: string
  /** Set on the volume by the first deploy's environment commit; Railway's plan default without it. */
  readonly sizeMB: Option.Option<number>
}

export interface RailwayOptions {
  readonly token: Redacted.Redacted<string>
  /** Every token (RAILWAY_API_TOKENS; `token` is the first). Project and volume creations are spread over them. */
  readonly tokens?: ReadonlyArray<Redacted.Redacted<string>>
  /** How long a token rests after a project or volume creation. Default 30 s (Railway: one per 30 s per token). */
  readonly tokenCooldown?: Duration.DurationInput
  /** Default shared. */
  readonly placement?: Placement
  /** A volume per instance. None by default. */
  readonly volume?: VolumeOptions | undefined
  /** How long an empty project or an unattached volume of the pool's is left alone before it is removed. Default 60 s. */
  readonly orphanGrace?: Duration.DurationInput
  /** `auto` asks Railway once which kind the token is. */
  readonly tokenKind: TokenKind | "auto"
  /** The project of the `shared` placement (unused by the others). */
  readonly projectId: string
  /**
   * One of the two; the name is resolved to an id once, case-insensitively. With projects of the pool's own,
   * the name is what their environment is called (an id means "production").
   */
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

/** With a project per instance, what spare projects are called by default (then a random suffix). */
export const SPARE_PROJECT_PREFIX = "warmpool-spare-"

export const DEFAULT_RUNTIME_IMAGE = "ghcr.io/xmtplabs/convos-runtime:latest"
export const DEFAULT_API_URL = "https://backboard.railway.com/graphql/v2"

const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: `${name} must be a whole number ≥ 1`, validation: (n) => n >= 1 }),
    Config.withDefault(fallback)
  )

/** RAILWAY_API_TOKENS (comma-separated) beside RAILWAY_API_TOKEN: every token, RAILWAY_API_TOKEN first when both are set. */
const TokensConfig = Config.all({
  one: Config.option(Config.nonEmptyString("RAILWAY_API_TOKEN")),
  many: Config.option(Config.string("RAILWAY_API_TOKENS"))
}).pipe(
  Config.mapOrFail(({ many, one }): Either.Either<ReadonlyArray<Redacted.Redacted<string>>, ConfigError.ConfigError> => {
    const listed = Option.match(many, { onNone: () => [], onSome: (text) => text.split(",").map((t) => t.trim()).filter((t) => t !== "") })
    const all = [...new Set([...Option.toArray(one), ...listed])]
    return all.length === 0
      ? Either.left(ConfigError.MissingData(["RAILWAY_API_TOKEN"], "set RAILWAY_API_TOKEN or RAILWAY_API_TOKENS"))
      : Either.right(all.map((t) => Redacted.make(t)))
  })
)

const PLACEMENTS = ["shared", "project-per-instance", "sharded"] as const

const PlacementConfig: Config.Config<Placement> = Config.literal(...PLACEMENTS)("RAILWAY_PLACEMENT").pipe(
  Config.withDefault("shared" as const),
  (tag) =>
    Config.all({
      tag,
      workspaceId: Config.option(Config.nonEmptyString("RAILWAY_TEAM_ID")),
      servicesPerProject: positiveInt("RAILWAY_SERVICES_PER_PROJECT", 25),
      spareProjects: Config.integer("RAILWAY_SPARE_PROJECTS").pipe(
        Config.validate({ message: "RAILWAY_SPARE_PROJECTS must be a whole number from 0 to 10", validation: (n) => n >= 0 && n <= 10 }),
        Config.withDefault(0)
      ),
      projectPrefix: Config.option(Config.string("RAILWAY_PROJECT_PREFIX").pipe(
        Config.validate({ message: "must be 1–20 letters, digits or dashes", validation: (p) => /^[a-z0-9-]{1,20}$/i.test(p) })
      ))
    }),
  Config.mapOrFail(({ projectPrefix, servicesPerProject, spareProjects, tag, workspaceId }): Either.Either<Placement, ConfigError.ConfigError> => {
    if (tag === "shared") return Either.right({ _tag: "shared" })
    if (Option.isNone(workspaceId)) {
      return Either.left(ConfigError.MissingData(["RAILWAY_TEAM_ID"], `RAILWAY_PLACEMENT=${tag} makes projects in a workspace: set RAILWAY_TEAM_ID`))
    }
    return Either.right(
      tag === "sharded"
        ? { _tag: "sharded", workspaceId: workspaceId.value, servicesPerProject, projectPrefix: Option.getOrElse(projectPrefix, () => "warmpool-shard-") }
        : { _tag: "project-per-instance", workspaceId: workspaceId.value, spareProjects, projectPrefix: Option.getOrElse(projectPrefix, () => SPARE_PROJECT_PREFIX) }
    )
  })
)

const VolumeConfig: Config.Config<VolumeOptions | undefined> = Config.all({
  mountPath: Config.option(Config.string("RAILWAY_VOLUME_MOUNT_PATH").pipe(
    Config.validate({ message: "must be an absolute path such as /data", validation: (p) => /^\/[^\s]*$/.test(p) && p !== "/" })
  )),
  sizeMB: Config.option(positiveInt("RAILWAY_VOLUME_SIZE_MB", 1))
}).pipe(Config.map(({ mountPath, sizeMB }) => Option.getOrUndefined(Option.map(mountPath, (path) => ({ mountPath: path, sizeMB })))))

/** The seed's RAILWAY_* variables, plus RAILWAY_API_URL, RAILWAY_TOKEN_KIND, the client's limits, placement, tokens and volumes. */
export const RailwayConfig: Config.Config<RailwayOptions> = Config.all({
  tokens: TokensConfig,
  tokenCooldown: Config.integer("RAILWAY_TOKEN_COOLDOWN_MS").pipe(
    Config.validate({ message: "RAILWAY_TOKEN_COOLDOWN_MS must be a whole number ≥ 0", validation: (n) => n >= 0 }),
    Config.withDefault(30_000),
    Config.map(Duration.millis)
  ),
  placement: PlacementConfig,
  volume: VolumeConfig,
  tokenKind: Config.literal("auto", "account", "project")("RAILWAY_TOKEN_KIND").pipe(Config.withDefault("auto" as const)),
  projectId: Config.option(Config.nonEmptyString("RAILWAY_PROJECT_ID")),
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
}).pipe(
  Config.mapOrFail(({ projectId, tokens, ...rest }): Either.Either<RailwayOptions, ConfigError.ConfigError> =>
    rest.placement._tag === "shared" && Option.isNone(projectId)
      ? Either.left(ConfigError.MissingData(["RAILWAY_PROJECT_ID"], "RAILWAY_PROJECT_ID is required with RAILWAY_PLACEMENT=shared (the default)"))
      : Either.right({ ...rest, token: tokens[0]!, tokens, projectId: Option.getOrElse(projectId, () => ""), volume: rest.volume })
  )
)

import { Config, type Option, type Redacted, Schema } from "effect"

export const LimitReset = Schema.Literal("daily", "weekly", "monthly")
export type LimitReset = typeof LimitReset.Type

export interface OpenRouterOptions {
  /** Management key: with it, each instance gets its own key. */
  readonly managementKey: Option.Option<Redacted.Redacted<string>>
  /** Shared key: injected as is when there is no management key. */
  readonly sharedKey: Option.Option<Redacted.Redacted<string>>
  /** USD spend limit per key. */
  readonly keyLimit: number
  readonly limitReset: LimitReset
  readonly apiUrl: string
}

/** The seed's environment variables, plus OPENROUTER_API_URL (tests point it at the emulator). */
export const OpenRouterConfig: Config.Config<OpenRouterOptions> = Config.all({
  managementKey: Config.option(Config.redacted("OPENROUTER_MANAGEMENT_KEY")),
  sharedKey: Config.option(Config.redacted("OPENROUTER_API_KEY")),
  keyLimit: Config.number("OPENROUTER_KEY_LIMIT").pipe(
    Config.validate({ message: "OPENROUTER_KEY_LIMIT must be a number of USD ≥ 0", validation: (n) => n >= 0 }),
    Config.withDefault(20)
  ),
  limitReset: Config.literal("daily", "weekly", "monthly")("OPENROUTER_KEY_LIMIT_RESET").pipe(Config.withDefault("monthly" as const)),
  apiUrl: Config.string("OPENROUTER_API_URL").pipe(Config.withDefault("https://openrouter.ai/api/v1"))
})


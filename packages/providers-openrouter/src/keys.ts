/**
 * One OpenRouter key's spend, read and changed with the management key: what an instance's credits check and
 * top-up use. OpenRouter is the one source of truth for a key's limit (the replaced system kept a copy that drifted).
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type { ProviderError } from "@warmpool/reconciler"
import { makeJsonApi } from "@warmpool/reconciler/http"
import { Context, Effect, Layer, Option, type Redacted, Schema } from "effect"
import { OpenRouterConfig } from "./config.js"

const KeyData = Schema.Struct({
  limit: Schema.optionalWith(Schema.NullOr(Schema.Number), { default: () => null }),
  usage: Schema.optionalWith(Schema.Number, { default: () => 0 }),
  limit_reset: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null })
})
const KeyAnswer = Schema.Struct({ data: KeyData })

/** A key's limit (USD; null: none), what it spent against it, and when the limit resets (daily, weekly, monthly). */
export interface KeySpend {
  readonly limit: number | null
  readonly usage: number
  readonly limitReset: string | null
}

const toSpend = ({ data }: typeof KeyAnswer.Type): KeySpend => ({ limit: data.limit, usage: data.usage, limitReset: data.limit_reset })

export class OpenRouterKeys extends Context.Tag("@warmpool/providers-openrouter/OpenRouterKeys")<
  OpenRouterKeys,
  {
    readonly spend: (hash: string) => Effect.Effect<KeySpend, ProviderError>
    /** Sets the key's limit; answers the key as it is now. */
    readonly setLimit: (hash: string, limit: number) => Effect.Effect<KeySpend, ProviderError>
  }
>() {}

const make = (options: { readonly apiUrl: string; readonly managementKey: Redacted.Redacted<string> }) =>
  Effect.map(makeJsonApi({ baseUrl: options.apiUrl, token: options.managementKey }), (api) =>
    OpenRouterKeys.of({
      spend: (hash) =>
        api.call({ operation: "openrouter.getKey", method: "GET", path: `/keys/${encodeURIComponent(hash)}`, response: KeyAnswer }).pipe(
          Effect.map(toSpend),
          Effect.withSpan("OpenRouterKeys.spend")
        ),
      setLimit: (hash, limit) =>
        api.call({ operation: "openrouter.updateKey", method: "PATCH", path: `/keys/${encodeURIComponent(hash)}`, body: { limit }, response: KeyAnswer }).pipe(
          Effect.map(toSpend),
          Effect.withSpan("OpenRouterKeys.setLimit")
        )
    }))

export const OpenRouterKeysLive = {
  layer: (options: { readonly apiUrl: string; readonly managementKey: Redacted.Redacted<string> }): Layer.Layer<OpenRouterKeys, never, HttpClient.HttpClient> =>
    Layer.effect(OpenRouterKeys, make(options)),
  /** From the environment; nothing without OPENROUTER_MANAGEMENT_KEY (no per-instance keys to read). */
  layerConfig: Layer.unwrapEffect(Effect.map(OpenRouterConfig, (config) =>
    Option.match(config.managementKey, {
      onNone: () => Layer.empty,
      onSome: (managementKey) => Layer.effect(OpenRouterKeys, make({ apiUrl: config.apiUrl, managementKey }))
    })))
}

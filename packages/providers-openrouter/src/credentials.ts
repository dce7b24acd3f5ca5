/**
 * Per-instance OpenRouter keys: created (named after the instance, with a spend limit) before the
 * instance, deleted with it. A row that lost its key hash is matched by name over EVERY page of keys
 * (the seed read only the first page and leaked keys).
 */
import * as HttpClient from "@effect/platform/HttpClient"
import { Credentials, type Instance, type IssuedCredentials, type ProviderError } from "@warmpool/reconciler"
import { makeJsonApi } from "@warmpool/reconciler/http"
import { Effect, Layer, Option, Redacted, Schema } from "effect"
import { OpenRouterConfig, type OpenRouterOptions } from "./config.js"

const KeyInfo = Schema.Struct({ hash: Schema.String, name: Schema.String })
const Created = Schema.Struct({ data: KeyInfo, key: Schema.String })
const KeyPage = Schema.Struct({ data: Schema.Array(KeyInfo) })
const Deleted = Schema.Struct({ deleted: Schema.optional(Schema.Boolean) })

/** The key of the row's `handles` under which an instance's OpenRouter key hash is kept. */
export const OPENROUTER_KEY_HANDLE = "openrouterKeyHash"

/** `GET /keys` pages hold this many keys. */
export const PAGE_SIZE = 100

const make = (options: OpenRouterOptions & { readonly managementKey: Option.Some<Redacted.Redacted<string>> }) =>
  Effect.gen(function*() {
    const api = yield* makeJsonApi({ baseUrl: options.apiUrl, token: options.managementKey.value })

    /** Every key named `name`, over every page. */
    const findByName = (name: string) =>
      Effect.iterate({ offset: 0, found: [] as ReadonlyArray<string>, done: false }, {
        while: (s) => !s.done,
        body: (s) =>
          api.call({ operation: "openrouter.listKeys", method: "GET", path: "/keys", query: { offset: String(s.offset) }, response: KeyPage }).pipe(
            Effect.map((page) => ({
              offset: s.offset + page.data.length,
              found: [...s.found, ...page.data.filter((k) => k.name === name).map((k) => k.hash)],
              done: page.data.length < PAGE_SIZE
            }))
          )
      }).pipe(Effect.map((s) => s.found))

    const deleteKey = (hash: string) =>
      api.call({ operation: "openrouter.deleteKey", method: "DELETE", path: `/keys/${encodeURIComponent(hash)}`, response: Deleted }).pipe(
        Effect.asVoid,
        Effect.catchTag("NotFoundError", () => Effect.void) // already gone
      )

    const release = (instance: Instance): Effect.Effect<void, ProviderError> => {
      const hash = instance.handles[OPENROUTER_KEY_HANDLE]
      return (hash !== undefined
        ? deleteKey(hash)
        : Effect.flatMap(findByName(instance.name), (hashes) => Effect.forEach(hashes, deleteKey, { discard: true }))
      ).pipe(Effect.withSpan("OpenRouterCredentials.release"))
    }

    const issue = (instance: Instance): Effect.Effect<IssuedCredentials, ProviderError> =>
      Effect.gen(function*() {
        // A key's secret is shown only when it is created, so a key left by an earlier try cannot be reused:
        // delete it, then create anew. Retried creates leave exactly one key.
        const leftovers = yield* findByName(instance.name)
        yield* Effect.forEach(leftovers, deleteKey, { discard: true })
        const created = yield* api.call({
          operation: "openrouter.createKey",
          method: "POST",
          path: "/keys",
          body: { name: instance.name, limit: options.keyLimit, limit_reset: options.limitReset },
          response: Created
        })
        return { env: { OPENROUTER_API_KEY: created.key }, handles: { [OPENROUTER_KEY_HANDLE]: created.data.hash } }
      }).pipe(Effect.withSpan("OpenRouterCredentials.issue"))

    return Credentials.of({ issue, release })
  })

/** Without a management key: the shared key (if any) goes to every instance, nothing is created or deleted. */
const shared = (options: OpenRouterOptions) =>
  Credentials.of({
    issue: () =>
      Effect.succeed({
        env: Option.match(options.sharedKey, { onNone: () => ({}), onSome: (key) => ({ OPENROUTER_API_KEY: Redacted.value(key) }) }),
        handles: {}
      }),
    release: () => Effect.void
  })

/** From options (library users, tests). Needs an `HttpClient`. */
const layer = (options: OpenRouterOptions): Layer.Layer<Credentials, never, HttpClient.HttpClient> =>
  Option.isSome(options.managementKey)
    ? Layer.effect(Credentials, make({ ...options, managementKey: options.managementKey }))
    : Layer.succeed(Credentials, shared(options))

export const OpenRouterCredentials = {
  layer,
  /** From the environment (OPENROUTER_MANAGEMENT_KEY, OPENROUTER_API_KEY, OPENROUTER_KEY_LIMIT, …). */
  layerConfig: Layer.unwrapEffect(Effect.map(OpenRouterConfig, layer))
}

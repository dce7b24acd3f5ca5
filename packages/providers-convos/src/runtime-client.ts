/**
 * The Convos runtime contract (DESIGN §4) from the pool's side: `GET /pool/health` and
 * `POST /pool/provision`, both with `Authorization: Bearer <POOL_API_KEY>`.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import {
  AlreadyBoundError,
  HealthProbe,
  InstanceRuntime,
  type ProbeAnswer,
  ProvisionRejectedError,
  ProvisionUnknownError,
  type Runtime
} from "@warmpool/reconciler"
import { Duration, Effect, Layer, Redacted, Schema } from "effect"
import { ConvosClaim, convosAttributes, convosBoundAs, ConvosProvisioned, provisionBody } from "./claim.js"

export interface RuntimeClientOptions {
  /** POOL_API_KEY: instances accept it as their bearer token. */
  readonly apiKey: Redacted.Redacted<string>
  /** Health answers slower than this count as unreachable. Default 10 s (a sleeping service takes a while to wake). */
  readonly healthTimeout?: Duration.DurationInput
}

/**
 * `{ ready }`; Convos runtimes add the `version` they run, which the pool records (self-info's `runtimeVersion`).
 * A version that is no string is ignored: it never keeps a ready instance from serving.
 */
const HealthAnswer = Schema.Struct({ ready: Schema.Boolean, version: Schema.optional(Schema.Unknown) })

const answerOf = ({ ready, version }: typeof HealthAnswer.Type): ProbeAnswer => {
  const health = ready ? "ready" as const : "not-ready" as const
  return typeof version === "string" && version !== "" ? { health, runtimeVersion: version.slice(0, 100) } : health
}

const url = (base: string, path: string) => `${base.replace(/\/$/, "")}${path}`

export const makeHealthProbe = (options: RuntimeClientOptions) =>
  Effect.map(HttpClient.HttpClient, (client) =>
    HealthProbe.of({
      check: ({ url: base }) =>
        client.execute(HttpClientRequest.get(url(base, "/pool/health")).pipe(HttpClientRequest.bearerToken(Redacted.value(options.apiKey)))).pipe(
          Effect.flatMap((response): Effect.Effect<unknown, unknown> => (response.status === 200 ? response.json : Effect.fail(response.status))),
          Effect.flatMap(Schema.decodeUnknown(HealthAnswer)),
          Effect.map(answerOf),
          Effect.scoped,
          Effect.timeout(options.healthTimeout ?? Duration.seconds(10)),
          Effect.orElseSucceed((): ProbeAnswer => "unreachable"),
          Effect.withSpan("HttpHealthProbe.check")
        )
    }))

export const makeInstanceRuntime = (options: RuntimeClientOptions) =>
  Effect.map(HttpClient.HttpClient, (client): Runtime<ConvosClaim, ConvosProvisioned> => ({
    request: ConvosClaim,
    attributes: convosAttributes,
    boundAs: convosBoundAs,
    provision: (instance, request) => {
      const instanceId = instance.id
      const unknown = (message: string) => new ProvisionUnknownError({ instanceId, message })
      if (instance.url === null) return Effect.fail(new ProvisionRejectedError({ instanceId, status: 0, message: "instance has no URL" }))
      return client.execute(
        HttpClientRequest.post(url(instance.url, "/pool/provision")).pipe(
          HttpClientRequest.bearerToken(Redacted.value(options.apiKey)),
          HttpClientRequest.bodyUnsafeJson(provisionBody(request))
        )
      ).pipe(
        Effect.mapError((error) => unknown(`request failed: ${error.message}`)),
        Effect.flatMap((response) =>
          Effect.gen(function*() {
            const text = yield* response.text.pipe(Effect.orElseSucceed(() => ""))
            if (response.status === 409) return yield* new AlreadyBoundError({ instanceId, message: "instance is already bound to a conversation (409)" })
            if (response.status >= 400 && response.status < 500) {
              return yield* new ProvisionRejectedError({ instanceId, status: response.status, message: text.slice(0, 200) })
            }
            if (response.status !== 200) return yield* unknown(`HTTP ${response.status}`)
            const json = yield* Effect.try({ try: () => JSON.parse(text) as unknown, catch: () => unknown("non-JSON answer") })
            return yield* Schema.decodeUnknown(ConvosProvisioned)(json).pipe(Effect.mapError(() => unknown("unexpected answer shape")))
          })
        ),
        Effect.scoped,
        // No deadline of its own: the Controller bounds every provision (`provisionTimeout`), whatever the runtime.
        Effect.withSpan("HttpInstanceRuntime.provision")
      )
    }
  }))

/** Health probe and runtime client for Convos instances. Needs an `HttpClient`. */
export const ConvosRuntime = {
  layer: (options: RuntimeClientOptions): Layer.Layer<HealthProbe | InstanceRuntime, never, HttpClient.HttpClient> =>
    Layer.merge(Layer.effect(HealthProbe, makeHealthProbe(options)), Layer.effect(InstanceRuntime, makeInstanceRuntime(options)))
}

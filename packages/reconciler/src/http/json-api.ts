/**
 * Calls to a JSON API for provider authors: bearer auth, a timeout per call, answers decoded with Schema,
 * every failure a tagged `ProviderError` (an HTML page or any non-JSON body included: never a parse crash),
 * retries per `retryRemote`. Secrets are scrubbed from every message.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { Duration, Effect, Redacted, Schema } from "effect"
import { type ProviderError, TransientError } from "../errors.js"
import { errorFromHttpStatus, retryRemote, type RetryOptions } from "../remote.js"

export interface JsonApiOptions {
  /** e.g. `https://openrouter.ai/api/v1` */
  readonly baseUrl: string
  /** Sent as `Authorization: Bearer …`. */
  readonly token: Redacted.Redacted<string>
  /** Per call. Default 15 s. */
  readonly timeout?: Duration.DurationInput
  readonly retry?: RetryOptions
}

export interface JsonCall<A, I> {
  readonly operation: string
  readonly method: "GET" | "POST" | "DELETE" | "PATCH" | "PUT"
  readonly path: string
  readonly body?: unknown
  readonly query?: Readonly<Record<string, string>>
  readonly response: Schema.Schema<A, I>
}

/** The message of an error body: `{error: {message}}`, `{error: "…"}`, `{message}`, or the status alone. */
const remoteMessage = (text: string, contentType: string | undefined): string => {
  if (!(contentType ?? "").includes("json")) return text === "" ? "" : `non-JSON answer (${contentType ?? "no content type"})`
  try {
    const body = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown }
    if (typeof body.error === "string") return body.error
    if (typeof body.error?.message === "string") return body.error.message
    if (typeof body.message === "string") return body.message
  } catch {
    return "malformed JSON answer"
  }
  return ""
}

export const makeJsonApi = (options: JsonApiOptions) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const timeout = Duration.decode(options.timeout ?? Duration.seconds(15))
    const secret = Redacted.value(options.token)
    const scrub = (text: string) => (secret === "" ? text : text.split(secret).join("[redacted]")).slice(0, 500)
    const retry = retryRemote(options.retry)

    const once = <A, I>(call: JsonCall<A, I>): Effect.Effect<A, ProviderError> =>
      Effect.gen(function*() {
        const url = new URL(`${options.baseUrl.replace(/\/$/, "")}${call.path}`)
        for (const [key, value] of Object.entries(call.query ?? {})) url.searchParams.set(key, value)
        let request = HttpClientRequest.make(call.method)(url.toString()).pipe(
          HttpClientRequest.bearerToken(secret),
          HttpClientRequest.acceptJson
        )
        if (call.body !== undefined) request = HttpClientRequest.bodyUnsafeJson(request, call.body)
        const transient = (message: string) => new TransientError({ operation: call.operation, message: scrub(message) })
        const response = yield* client.execute(request).pipe(
          Effect.catchTag("RequestError", (error) => Effect.fail(transient(`request failed: ${error.message}`))),
          Effect.catchTag("ResponseError", (error) => Effect.fail(transient(`response failed: ${error.message}`)))
        )
        const text = yield* response.text.pipe(Effect.orElseSucceed(() => ""))
        const contentType = response.headers["content-type"]
        if (response.status < 200 || response.status >= 300) {
          return yield* errorFromHttpStatus(call.operation, response.status, scrub(remoteMessage(text, contentType)), response.headers["retry-after"])
        }
        const json = yield* Effect.try({
          try: () => (text === "" ? {} : JSON.parse(text)) as unknown,
          catch: () => transient(`HTTP ${response.status} with a non-JSON body (${contentType ?? "no content type"})`)
        })
        return yield* Schema.decodeUnknown(call.response)(json).pipe(
          Effect.mapError(() => transient(`HTTP ${response.status} with an unexpected body shape`))
        )
      }).pipe(
        Effect.scoped,
        // The whole exchange, body included: a server that sends its headers and then stalls is as hung as a silent one.
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => new TransientError({ operation: call.operation, message: `no answer within ${Duration.format(timeout)}`, noAnswer: true })
        })
      )

    return {
      call: <A, I>(call: JsonCall<A, I>) =>
        retry(once(call)).pipe(Effect.withSpan(call.operation, { attributes: { method: call.method, path: call.path } }))
    }
  })

export type JsonApi = Effect.Effect.Success<ReturnType<typeof makeJsonApi>>

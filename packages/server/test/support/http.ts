/** Calling the API under test over loopback HTTP, as a client would. */
import { HttpServer } from "@effect/platform"
import { Effect } from "effect"

/** The base URL of the `HttpServer` in context. */
export const baseUrl = Effect.map(HttpServer.HttpServer, (server) => `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`)

export interface CallOptions {
  readonly body?: string | object
  /** The bearer key; `null` sends none. Default: the caller's key. */
  readonly key?: string | null
  readonly contentType?: string
}

/** `call(method, path)` with `key` as the bearer; answers the status, the JSON (when the body is JSON) and the text. */
export const caller = (key: string) => (method: string, path: string, options: CallOptions = {}) =>
  Effect.gen(function*() {
    const url = yield* baseUrl
    const headers: Record<string, string> = {}
    if (options.key !== null) headers.authorization = `Bearer ${options.key ?? key}`
    if (options.body !== undefined) headers["content-type"] = options.contentType ?? "application/json"
    const response = yield* Effect.promise(() =>
      fetch(`${url}${path}`, {
        method,
        headers,
        ...(options.body === undefined ? {} : { body: typeof options.body === "string" ? options.body : JSON.stringify(options.body) })
      }))
    const text = yield* Effect.promise(() => response.text())
    let json: any = undefined
    try {
      json = JSON.parse(text)
    } catch {
      json = undefined
    }
    return { status: response.status, json, text, headers: response.headers }
  })

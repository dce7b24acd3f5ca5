/**
 * The JSON API client's deadline against servers that hang: one that never answers, and one that sends its
 * headers and then stalls the body. Either way the call fails at its deadline, as a `TransientError` with
 * `noAnswer`, after one request (a hung call is not tried again within the same action).
 */
import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Redacted, Schema } from "effect"
import { createServer, type ServerResponse } from "node:http"
import { makeJsonApi } from "../src/http/index.js"
import { startHttpEmulator } from "../src/testing/index.js"

const TIMEOUT = Duration.millis(300)

/** A server on loopback that sends 200 with its headers and half a JSON body, then nothing. */
const stallingServer = Effect.acquireRelease(
  Effect.async<{ readonly url: string; readonly requests: () => number; readonly close: () => void }>((resume) => {
    let requests = 0
    const held: Array<ServerResponse> = []
    const server = createServer((_req, res) => {
      requests++
      held.push(res)
      res.writeHead(200, { "content-type": "application/json" })
      res.write("{\"data\":")
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      resume(Effect.succeed({
        url: `http://127.0.0.1:${port}`,
        requests: () => requests,
        close: () => {
          for (const res of held) res.destroy()
          server.close()
        }
      }))
    })
  }),
  (server) => Effect.sync(server.close)
)

const callOnce = (baseUrl: string) =>
  Effect.gen(function*() {
    const api = yield* makeJsonApi({ baseUrl, token: Redacted.make("secret-token"), timeout: TIMEOUT })
    const started = Date.now()
    const error = yield* Effect.flip(api.call({ operation: "test.get", method: "GET", path: "/thing", response: Schema.Unknown }))
    return { error, ms: Date.now() - started }
  }).pipe(Effect.provide(FetchHttpClient.layer))

describe("makeJsonApi against a hung server", () => {
  it.live("no answer at all: fails at its deadline, once, marked noAnswer", () =>
    Effect.gen(function*() {
      const emulator = yield* startHttpEmulator(() => ({ status: 200, body: {} }))
      emulator.inject({ _tag: "Hang" }, { times: Number.POSITIVE_INFINITY })
      const { error, ms } = yield* callOnce(emulator.url)
      expect(error._tag).toBe("TransientError")
      expect(error._tag === "TransientError" && error.noAnswer).toBe(true)
      expect(error.message).toMatch(/no answer within/)
      expect(ms).toBeGreaterThanOrEqual(250)
      expect(ms).toBeLessThan(2_000)
      expect(emulator.calls()).toHaveLength(1)
      // Once restored, the same client is answered again.
      emulator.restore()
      const api = yield* makeJsonApi({ baseUrl: emulator.url, token: Redacted.make("secret-token"), timeout: TIMEOUT }).pipe(
        Effect.provide(FetchHttpClient.layer)
      )
      expect(yield* api.call({ operation: "test.get", method: "GET", path: "/thing", response: Schema.Unknown })).toEqual({})
    }).pipe(Effect.scoped))

  it.live("headers, then a body that never ends: the deadline covers the body too", () =>
    Effect.gen(function*() {
      const server = yield* stallingServer
      const { error, ms } = yield* callOnce(server.url)
      expect(error._tag === "TransientError" && error.noAnswer).toBe(true)
      expect(ms).toBeLessThan(2_000)
      expect(server.requests()).toBe(1)
    }).pipe(Effect.scoped))
})

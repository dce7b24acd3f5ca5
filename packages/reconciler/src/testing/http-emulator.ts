/**
 * A harness for emulators of remote APIs: a real HTTP server on loopback that routes JSON requests to
 * a handler, records every call, and injects the failures real services have (429 with Retry-After,
 * HTML error pages from a CDN, 5xx, slow answers, requests never answered).
 */
import { Effect, type Scope } from "effect"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"

export interface EmulatorRequest {
  readonly method: string
  readonly path: string
  readonly query: URLSearchParams
  readonly headers: IncomingMessage["headers"]
  /** The parsed JSON body, or undefined when there was none. */
  readonly body: unknown
}

export interface EmulatorResponse {
  readonly status: number
  readonly body?: unknown
  readonly headers?: Readonly<Record<string, string>>
}

export type EmulatorHandler = (request: EmulatorRequest) => EmulatorResponse | Promise<EmulatorResponse>

/** A failure to serve instead of (or before) the real answer. */
export type Fault =
  | { readonly _tag: "Status"; readonly status: number; readonly body?: unknown; readonly headers?: Readonly<Record<string, string>> }
  /** An HTML page, as a CDN in front of the API answers when it is overloaded. */
  | { readonly _tag: "Html"; readonly status: number; readonly headers?: Readonly<Record<string, string>> }
  /** The answer comes, but late. */
  | { readonly _tag: "Delay"; readonly ms: number }
  /** The request is read and never answered: the connection stays open until `restore`. */
  | { readonly _tag: "Hang" }

export interface RecordedCall {
  readonly method: string
  readonly path: string
  readonly authorization: string | undefined
}

export interface Emulator {
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /** Serve `fault` to the next `times` requests whose method and path match. */
  readonly inject: (fault: Fault, options?: { readonly times?: number; readonly method?: string; readonly path?: RegExp }) => void
  /** Every request served, in order. */
  readonly calls: () => ReadonlyArray<RecordedCall>
  /** Drops every fault still pending, and resets the connections of the requests left hanging. */
  readonly restore: () => void
}

/**
 * Requests an emulator reads and never answers (a hung API), each held open until `release` resets its connection,
 * as when the stuck side is finally restarted.
 */
export const makeHeldRequests = () => {
  const held = new Set<ServerResponse>()
  return {
    hold: (res: ServerResponse) => {
      held.add(res)
      res.on("close", () => held.delete(res))
    },
    release: () => {
      for (const res of held) res.destroy()
      held.clear()
    }
  }
}

const html = (status: number) =>
  `<!DOCTYPE html><html><head><title>${status} Error</title></head><body><h1>${status}</h1><p>The upstream server is not available.</p></body></html>`

export const startHttpEmulator = (handler: EmulatorHandler): Effect.Effect<Emulator, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<Emulator & { close: () => void }>((resume) => {
      const faults: Array<{ fault: Fault; left: number; method?: string | undefined; path?: RegExp | undefined }> = []
      const calls: Array<RecordedCall> = []
      const hanging = makeHeldRequests()

      const send = (res: ServerResponse, response: EmulatorResponse) => {
        res.writeHead(response.status, { "content-type": "application/json", ...response.headers })
        res.end(response.body === undefined ? "" : JSON.stringify(response.body))
      }

      const serve = async (req: IncomingMessage, res: ServerResponse) => {
        const url = new URL(req.url ?? "/", "http://127.0.0.1")
        const method = req.method ?? "GET"
        calls.push({ method, path: url.pathname, authorization: req.headers.authorization })
        const chunks: Array<Buffer> = []
        for await (const chunk of req) chunks.push(chunk as Buffer)
        const matching = faults.find((f) => f.left > 0 && (f.method === undefined || f.method === method) && (f.path === undefined || f.path.test(url.pathname)))
        if (matching !== undefined) {
          matching.left--
          const { fault } = matching
          if (fault._tag === "Hang") return hanging.hold(res)
          if (fault._tag === "Delay") await new Promise((r) => setTimeout(r, fault.ms))
          else if (fault._tag === "Html") {
            res.writeHead(fault.status, { "content-type": "text/html", ...fault.headers })
            return res.end(html(fault.status))
          } else return send(res, fault)
        }
        const text = Buffer.concat(chunks).toString("utf8")
        let body: unknown = undefined
        if (text !== "") {
          try {
            body = JSON.parse(text)
          } catch {
            return send(res, { status: 400, body: { error: { code: 400, message: "body is not JSON" } } })
          }
        }
        send(res, await handler({ method, path: url.pathname, query: url.searchParams, headers: req.headers, body }))
      }

      const server = createServer((req, res) => {
        serve(req, res).catch((error: unknown) => send(res, { status: 500, body: { error: { code: 500, message: String(error) } } }))
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        resume(Effect.succeed({
          url: `http://127.0.0.1:${port}`,
          inject: (fault, options = {}) => faults.push({ fault, left: options.times ?? 1, method: options.method, path: options.path }),
          calls: () => [...calls],
          restore: () => {
            faults.length = 0
            hanging.release()
          },
          close: () => {
            server.closeAllConnections()
            server.close()
          }
        }))
      })
    }),
    (emulator) => Effect.sync(() => emulator.close())
  )

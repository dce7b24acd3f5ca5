/**
 * A reference runtime: a small real server that keeps the Convos runtime contract (DESIGN §4), so a pool
 * can run end to end on one machine. Not ready during a start-up delay; binds one conversation, then 409.
 * A join whose URL holds `AWAITS_ACCEPTANCE_MARKER` answers that it awaits acceptance (and stays bound to it).
 */
import { createServer, type Server } from "node:http"
import { randomBytes, timingSafeEqual } from "node:crypto"
import { AWAITS_ACCEPTANCE_MARKER } from "../claim.js"

export interface ReferenceRuntimeOptions {
  readonly port: number
  readonly host?: string
  /** POOL_API_KEY: the bearer token the pool sends. */
  readonly apiKey: string
  /** How long before /pool/health says ready. */
  readonly startupDelayMs: number
  /** The version /pool/health reports beside `ready`, as Convos runtimes do. None: `{ ready }` alone. */
  readonly version?: string
}

const authorized = (header: string | undefined, apiKey: string) => {
  const expected = Buffer.from(`Bearer ${apiKey}`)
  const given = Buffer.from(header ?? "")
  return given.length === expected.length && timingSafeEqual(given, expected)
}

export const startReferenceRuntime = (options: ReferenceRuntimeOptions): Promise<Server> => {
  const startedAt = Date.now()
  let conversation: { conversationId: string | null; inviteUrl: string; joined: boolean; status?: string } | undefined
  const server = createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" })
      res.end(JSON.stringify(body))
    }
    if (req.method === "GET" && req.url === "/") return send(200, { runtime: "warmpool reference runtime", bound: conversation !== undefined })
    if (!authorized(req.headers.authorization, options.apiKey)) return send(401, { error: "unauthorized" })
    if (req.method === "GET" && req.url === "/pool/health") {
      const ready = Date.now() - startedAt >= options.startupDelayMs
      return send(200, options.version === undefined ? { ready } : { ready, version: options.version })
    }
    if (req.method === "POST" && req.url === "/pool/provision") {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        let body: { agentName?: unknown; instructions?: unknown; joinUrl?: unknown }
        try {
          body = JSON.parse(Buffer.concat(chunks).toString("utf8"))
        } catch {
          return send(400, { error: "body is not JSON" })
        }
        // Both optional (as in the Convos runtime), strings when given.
        for (const field of ["agentName", "instructions"] as const) {
          if (body[field] !== undefined && typeof body[field] !== "string") return send(400, { error: `${field} must be a string` })
        }
        if (conversation !== undefined) return send(409, { error: "already bound to a conversation" })
        const conversationId = randomBytes(8).toString("hex")
        conversation = typeof body.joinUrl !== "string"
          ? { conversationId, inviteUrl: `https://dev.convos.org/v2?i=${conversationId}`, joined: false }
          : body.joinUrl.includes(AWAITS_ACCEPTANCE_MARKER)
          ? { conversationId: null, inviteUrl: body.joinUrl, joined: false, status: "pending_acceptance" }
          : { conversationId, inviteUrl: body.joinUrl, joined: true }
        send(200, { ok: true, ...conversation })
      })
      return
    }
    send(404, { error: "not found" })
  })
  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port, options.host ?? "127.0.0.1", () => resolve(server))
  })
}

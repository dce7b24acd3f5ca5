/**
 * One sandbox: a Node process holding a warm JavaScript context, like a notebook kernel. Claimed by one owner, it
 * runs that owner's code (`POST /run`, the session's bearer token) with state kept between runs, until the session
 * expires. The process is the unit of isolation (node:vm is none): a real pool would run each in a container.
 */
import { randomBytes, timingSafeEqual } from "node:crypto"
import { createServer, type IncomingMessage } from "node:http"
import { createContext, runInContext } from "node:vm"

// Warming: the context and its preloaded helpers are made before the pool counts the sandbox ready.
const context = createContext({})
runInContext("globalThis.sum = (xs) => xs.reduce((a, b) => a + b, 0); globalThis.mean = (xs) => sum(xs) / xs.length", context)
const readyAt = Date.now() + Number(process.env.STARTUP_DELAY_MS ?? 0) // stands for loading heavier libraries
let session: { readonly token: string; readonly expiresAt: number } | undefined

const read = async (req: IncomingMessage) => {
  let text = ""
  for await (const chunk of req) text += chunk
  return text
}
const holdsToken = (header: string | undefined) => {
  const given = Buffer.from(header ?? ""), expected = Buffer.from(`Bearer ${session?.token}`)
  return session !== undefined && given.length === expected.length && timingSafeEqual(given, expected)
}

createServer(async (req, res) => {
  const send = (status: number, body: unknown) => {
    const text = JSON.stringify(body) // first: a value that cannot be sent fails before the headers go
    res.writeHead(status, { "content-type": "application/json" }).end(text)
  }
  try {
    if (req.method === "GET" && req.url === "/pool/health") return send(200, { ready: Date.now() >= readyAt })
    if (req.method === "POST" && req.url === "/pool/provision") {
      const { ttlSeconds } = JSON.parse(await read(req)) as { readonly ttlSeconds: number }
      if (session !== undefined) return send(409, { error: "already claimed" }) // checked after the await: binds once
      session = { token: randomBytes(24).toString("base64url"), expiresAt: Date.now() + ttlSeconds * 1000 }
      return send(200, { token: session.token, expiresAt: new Date(session.expiresAt).toISOString() })
    }
    if (req.method === "POST" && req.url === "/run") {
      if (!holdsToken(req.headers.authorization)) return send(401, { error: "unauthorized" })
      if (Date.now() > session!.expiresAt) return send(410, { error: "session expired" })
      return send(200, { value: runInContext(await read(req), context, { timeout: 2000 }) })
    }
    send(404, { error: "not found" })
  } catch (error) {
    send(400, { error: String(error) })
  }
}).listen(Number(process.env.PORT), "127.0.0.1")

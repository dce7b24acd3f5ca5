/**
 * The emulated services' instances, reachable on loopback: one HTTPS server (Railway gives instances `https://`
 * domains) that answers the Convos runtime contract for every service, under `/<service name>`. An instance is
 * ready once its latest deployment succeeded, and only if that deployment started with the `POOL_API_KEY` the
 * caller presents: an instance whose first deploy lacked its variables never becomes healthy, as on Railway.
 */
import { makeHeldRequests } from "@warmpool/reconciler/testing"
import { Effect, type Scope } from "effect"
import { randomBytes } from "node:crypto"
import { createServer } from "node:https"

export interface InstanceTls {
  readonly key: string
  readonly cert: string
}

export interface EmulatedInstance {
  /** Whether the latest deployment succeeded. */
  readonly running: boolean
  /** The variables that deployment started with. */
  readonly variables: Readonly<Record<string, string>>
  /** What `/pool/health` reports as `version` (a Convos runtime reports the version it runs); null: none. */
  readonly version: string | null
}

export const startInstances = (
  tls: InstanceTls,
  lookup: (name: string) => EmulatedInstance | undefined,
  faults: {
    /** How late `/pool/provision` answers (a claim in flight), in ms. */
    readonly provisionDelayMs: () => number
    /** Whether requests to this runtime path are read and never answered (a hung runtime). */
    readonly hangs: (path: string) => boolean
  }
): Effect.Effect<{ readonly host: string; readonly restore: () => void }, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ readonly host: string; readonly restore: () => void; readonly close: () => void }>((resume) => {
      const bound = new Set<string>()
      const hanging = makeHeldRequests()
      const server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
        const [, name = "", ...rest] = (req.url ?? "").split("/")
        const path = `/${rest.join("/")}`
        const instance = lookup(name)
        const answer = (status: number, body: unknown) => {
          res.writeHead(status, { "content-type": "application/json" })
          res.end(JSON.stringify(body))
        }
        req.resume()
        if (faults.hangs(path)) return hanging.hold(res)
        if (instance === undefined || !instance.running) return answer(503, { error: "no deployment is running" })
        if (req.headers.authorization !== `Bearer ${instance.variables.POOL_API_KEY}`) return answer(401, { error: "unauthorized" })
        if (path === "/pool/health") return answer(200, instance.version === null ? { ready: true } : { ready: true, version: instance.version })
        if (path === "/pool/provision" && req.method === "POST") {
          if (bound.has(name)) return answer(409, { error: "already bound" })
          bound.add(name)
          setTimeout(() => answer(200, { ok: true, inviteUrl: null, conversationId: randomBytes(8).toString("hex"), joined: false }), faults.provisionDelayMs())
          return
        }
        return answer(404, { error: "not found" })
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        resume(Effect.succeed({
          host: `127.0.0.1:${port}`,
          restore: hanging.release,
          close: () => {
            server.closeAllConnections()
            server.close()
          }
        }))
      })
    }),
    ({ close }) => Effect.sync(close)
  )

import { Effect } from "effect"
import { createServer, type Server, Socket } from "node:net"

/** A TCP proxy on loopback in front of Postgres, whose `cut` kills every connection and refuses new ones. */
export const proxy = (target: URL) =>
  Effect.acquireRelease(
    Effect.async<{ readonly port: number; readonly cut: Effect.Effect<void>; readonly server: Server }>((resume) => {
      const sockets = new Set<Socket>()
      let open = true
      const server = createServer((client) => {
        if (!open) return client.destroy()
        const upstream = new Socket()
        upstream.connect(Number(target.port || 5432), target.hostname)
        for (const s of [client, upstream]) {
          sockets.add(s)
          s.on("error", () => {})
          s.on("close", () => sockets.delete(s))
        }
        client.pipe(upstream).pipe(client)
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(Effect.succeed({
          port: typeof address === "object" && address !== null ? address.port : 0,
          server,
          cut: Effect.sync(() => {
            open = false
            for (const s of sockets) s.destroy()
          })
        }))
      })
    }),
    ({ server }) => Effect.sync(() => server.close())
  )


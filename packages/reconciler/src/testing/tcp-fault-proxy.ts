/**
 * A TCP proxy on loopback that breaks the connection to a dependency the ways networks and managed services do,
 * for tests that put a fault between the server and Postgres (or any TCP service):
 * - `reset`: every connection is closed and new ones are refused (a restart, a failover);
 * - `blackhole`: bytes stop flowing both ways and new connections are held unanswered, while every TCP connection
 *   stays open (a partition: nothing answers, nothing says so);
 * - `restore`: connections flow again. A connection whose side closed during a blackhole is dropped with what it
 *   held: its peer never sees it again, as across a partition where the closing side gave up.
 */
import { Effect } from "effect"
import { createServer, type Server, Socket } from "node:net"

export type TcpFault = "none" | "reset" | "blackhole"

export interface TcpFaultProxy {
  readonly port: number
  /** `postgres://…` (or any URL) with its host and port replaced by the proxy's. */
  readonly via: (url: string) => string
  readonly reset: Effect.Effect<void>
  readonly blackhole: Effect.Effect<void>
  readonly restore: Effect.Effect<void>
  readonly fault: Effect.Effect<TcpFault>
  /** Connections open now (both ends counted once). */
  readonly connections: Effect.Effect<number>
}

interface Pair {
  readonly client: Socket
  upstream: Socket | undefined
  /** A side closed while the pair was held: on restore it is dropped, never flushed. */
  broken: boolean
}

export const startTcpFaultProxy = (target: { readonly host: string; readonly port: number }) =>
  Effect.acquireRelease(
    Effect.async<TcpFaultProxy & { readonly server: Server; readonly pairs: Set<Pair> }>((resume) => {
      const pairs = new Set<Pair>()
      let fault: TcpFault = "none"
      const drop = (pair: Pair) => {
        pair.client.destroy()
        pair.upstream?.destroy()
        pairs.delete(pair)
      }
      const connect = (pair: Pair) => {
        const upstream = new Socket()
        pair.upstream = upstream
        upstream.on("error", () => drop(pair))
        upstream.on("close", () => (fault === "blackhole" ? (pair.broken = true) : drop(pair)))
        upstream.connect(target.port, target.host)
        pair.client.pipe(upstream).pipe(pair.client)
      }
      const server = createServer((client) => {
        if (fault === "reset") return client.destroy()
        const pair: Pair = { client, upstream: undefined, broken: false }
        pairs.add(pair)
        client.on("error", () => drop(pair))
        client.on("close", () => (fault === "blackhole" ? (pair.broken = true) : drop(pair)))
        // Held: the client's SYN was answered (by the kernel), nothing more until the partition heals.
        if (fault === "blackhole") client.pause()
        else connect(pair)
      })
      const hold = (pair: Pair) => {
        pair.client.pause()
        pair.upstream?.pause()
      }
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        resume(Effect.succeed({
          port,
          server,
          pairs,
          via: (url) => {
            const parsed = new URL(url)
            parsed.hostname = "127.0.0.1"
            parsed.port = String(port)
            return parsed.toString()
          },
          reset: Effect.sync(() => {
            fault = "reset"
            for (const pair of [...pairs]) drop(pair)
          }),
          blackhole: Effect.sync(() => {
            fault = "blackhole"
            for (const pair of pairs) hold(pair)
          }),
          restore: Effect.sync(() => {
            fault = "none"
            for (const pair of [...pairs]) {
              if (pair.broken || pair.client.destroyed) drop(pair)
              else if (pair.upstream === undefined) connect(pair)
              else {
                pair.client.resume()
                pair.upstream.resume()
              }
            }
          }),
          fault: Effect.sync(() => fault),
          connections: Effect.sync(() => pairs.size)
        }))
      })
    }),
    ({ pairs, server }) =>
      Effect.sync(() => {
        for (const pair of pairs) {
          pair.client.destroy()
          pair.upstream?.destroy()
        }
        server.close()
      })
  ).pipe(Effect.map(({ pairs: _pairs, server: _server, ...proxy }): TcpFaultProxy => proxy))

/** A TCP port on loopback that nothing listens on right now: for a child process, a test server, an embedded Postgres. */
import { Effect } from "effect"
import { createServer } from "node:net"
import { TransientError } from "./errors.js"

export const freePort = Effect.async<number, TransientError>((resume) => {
  const server = createServer()
  server.once("error", (error) => resume(Effect.fail(new TransientError({ operation: "freePort", message: error.message }))))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

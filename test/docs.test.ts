/**
 * The docs run: every TypeScript block of README.md and of each package's README is type-checked against the
 * workspace's packages, and every block not marked `<!-- not run: why -->` is run as a program of its own (as a
 * reader would paste it), which must exit 0. Runnable blocks get `DATABASE_URL`: a fresh database on the tests' server.
 */
import { describe, expect, inject, it } from "vitest"
import { databaseUrl } from "@warmpool/reconciler-pg/testing"
import { execFile } from "node:child_process"
import { mkdirSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import pg from "pg"
import ts from "typescript"
import { readmes, type Snippet, snippetsOf } from "../scripts/snippets.js"

const root = fileURLToPath(new URL("..", import.meta.url))
// Inside the repository, so the snippets resolve the workspace's packages like any module here.
const dir = join(root, ".tsbuild", "snippets")
const snippets = readmes(root).flatMap((readme) => snippetsOf(root, readme))
const fileOf = (snippet: Snippet) => join(dir, `${snippet.where.replace(/[^\w]+/g, "_")}.ts`)

rmSync(dir, { recursive: true, force: true })
mkdirSync(dir, { recursive: true })
for (const snippet of snippets) writeFileSync(fileOf(snippet), snippet.code)

const typeErrors = (): Map<string, Array<string>> => {
  const program = ts.createProgram(snippets.map(fileOf), {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    // The workspace's sources, as the tests see them: no build needed, never a stale dist/.
    customConditions: ["source"],
    strict: true,
    exactOptionalPropertyTypes: true,
    skipLibCheck: true,
    noEmit: true,
    types: ["node"],
    lib: ["lib.es2022.d.ts", "lib.dom.d.ts"]
  })
  const errors = new Map<string, Array<string>>()
  for (const snippet of snippets) {
    const source = program.getSourceFile(fileOf(snippet))!
    const diagnostics = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]
    errors.set(snippet.where, diagnostics.map((d) => {
      const line = d.start === undefined ? 0 : source.getLineAndCharacterOfPosition(d.start).line + 1
      return `line ${line} of the block: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`
    }))
  }
  return errors
}

const tsx = createRequire(import.meta.url).resolve("tsx/cli")

const run = (snippet: Snippet, env: NodeJS.ProcessEnv) =>
  new Promise<{ code: number | null; output: string }>((resolve) => {
    execFile(process.execPath, [tsx, "--conditions=source", fileOf(snippet)], { cwd: root, env, timeout: 90_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === "number" ? error.code : null) : 0, output: `${stdout}${stderr}` }))
  })

describe("README code blocks", () => {
  it("there are blocks to test, and the library's snippet is among the run ones", () => {
    expect(snippets.length).toBeGreaterThanOrEqual(5)
    expect(snippets.filter((s) => s.notRun === undefined).map((s) => s.where)).toContain(
      snippets.find((s) => s.where.startsWith("README.md:"))?.where
    )
  })

  it("every block type-checks", () => {
    expect(Object.fromEntries([...typeErrors()].filter(([, list]) => list.length > 0))).toEqual({})
  }, 120_000)

  const serverUrl = inject("postgresUrl")
  for (const snippet of snippets.filter((s) => s.notRun === undefined)) {
    it(`${snippet.where} runs and exits 0`, async () => {
      const name = `warmpool_docs_${Math.random().toString(36).slice(2, 10)}`
      const admin = new pg.Client(serverUrl)
      await admin.connect()
      await admin.query(`CREATE DATABASE ${name}`)
      try {
        const url = databaseUrl(serverUrl, name)
        const { code, output } = await run(snippet, { ...process.env, DATABASE_URL: url, TEST_DATABASE_URL: url })
        expect(code, output).toBe(0)
      } finally {
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
        await admin.end()
      }
    }, 120_000)
  }
})

/**
 * The TypeScript blocks of the READMEs, so the docs are tested like code (test/docs.test.ts) and the consumer
 * test can run the library snippet as a user would. A block is run unless the line before its fence is a comment
 * `<!-- not run: why -->` (it needs an account, or is a test file); every block is type-checked.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join, relative } from "node:path"

export interface Snippet {
  /** `packages/reconciler/README.md:17`: where the block's fence is. */
  readonly where: string
  readonly code: string
  /** Why it is not run, when it is not. */
  readonly notRun?: string
}

const NOT_RUN = /^<!--\s*not run(?::\s*(.*?))?\s*-->$/

/** The ```ts blocks of one Markdown file. */
export const snippetsOf = (root: string, path: string): Array<Snippet> => {
  const lines = readFileSync(path, "utf8").split("\n")
  const snippets: Array<Snippet> = []
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i]!)) continue
    const end = lines.findIndex((line, j) => j > i && /^```\s*$/.test(line))
    if (end === -1) throw new Error(`${relative(root, path)}:${i + 1}: a code block that never ends`)
    const marker = NOT_RUN.exec(lines[i - 1]?.trim() ?? "")
    snippets.push({
      where: `${relative(root, path)}:${i + 1}`,
      code: lines.slice(i + 1, end).join("\n") + "\n",
      ...(marker ? { notRun: marker[1] ?? "marked not run" } : {})
    })
    i = end
  }
  return snippets
}

/** The READMEs whose blocks are tested: the repository's and each package's. */
export const readmes = (root: string): Array<string> => [
  join(root, "README.md"),
  ...readdirSync(join(root, "packages")).sort().map((dir) => join(root, "packages", dir, "README.md")).filter(existsSync)
]

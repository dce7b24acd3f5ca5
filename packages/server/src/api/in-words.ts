/**
 * Body schemas whose errors say in words what is wrong ("instructions must be a string of at most 20,000
 * characters"), not a dump of the schema: each field carries its sentence, the struct joins them.
 */
import { ParseResult, Schema } from "effect"

/** `schema`, failing with `words` however its value is wrong (wrong type, too long, …). */
export const said = <S extends Schema.Schema.Any>(schema: S, words: string): S =>
  schema.annotations({ message: () => ({ message: words, override: true }) }) as S

/** An optional field: absent is fine, present must be valid (JSON has no `undefined`). */
export const optionalField = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })

const sentences = (issue: ParseResult.ParseIssue): string => {
  // Not even an object: nothing field by field to say.
  if (issue._tag !== "Composite") return "the body must be a JSON object"
  const inner = Array.isArray(issue.issues) ? issue.issues : [issue.issues as ParseResult.ParseIssue]
  return inner
    .flatMap((i: ParseResult.ParseIssue) => ParseResult.ArrayFormatter.formatIssueSync(i))
    .map((line) => (line.message === "is missing" ? `${line.path.join(".")} is missing` : line.message))
    .join("; ")
}

/** A body struct whose error message is its fields' sentences, joined. */
export const inWords = <S extends Schema.Schema.Any>(struct: S): S =>
  struct.annotations({ message: (issue) => ({ message: sentences(issue), override: true }) }) as S

import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { decodePoolSpec } from "../src/index.js"

const valid = { name: "agents", minIdle: 3, maxTotal: 10, template: { image: "ghcr.io/xmtplabs/convos-runtime:latest" } }

describe("PoolSpec", () => {
  it("decodes a spec, filling the defaults", () => {
    const spec = Either.getOrThrow(decodePoolSpec(valid))
    expect(spec).toMatchObject({ minIdle: 3, maxTotal: 10, stuckTimeoutMs: 900_000, createBatch: 5, namePrefix: "warmpool-", template: { env: {} } })
  })

  it("rejects nonsense with one message per problem, each naming its field", () => {
    const problems = decodePoolSpec({
      name: "Bad Name!",
      minIdle: -1,
      maxTotal: 2.5,
      createBatch: 0,
      stuckTimeoutMs: -5,
      namePrefix: "9x",
      template: { image: "" }
    })
    expect(Either.isLeft(problems)).toBe(true)
    const lines = Either.getLeft(problems).pipe((o) => (o._tag === "Some" ? o.value : []))
    for (const field of ["name", "minIdle", "maxTotal", "createBatch", "stuckTimeoutMs", "namePrefix", "template.image"]) {
      expect(lines.some((line) => line.startsWith(field)), `${field} in ${JSON.stringify(lines)}`).toBe(true)
    }
  })

  it("rejects maxTotal below minIdle, and unknown fields", () => {
    expect(decodePoolSpec({ ...valid, minIdle: 11 })).toEqual(Either.left(["maxTotal (10) must be ≥ minIdle (11)"]))
    const unknown = decodePoolSpec({ ...valid, minIdel: 3 })
    expect(Either.isLeft(unknown) && unknown.left.join()).toContain("minIdel")
  })

  it("decodes autoscale with its defaults, and names each bad field in its own line", () => {
    expect(Either.getOrThrow(decodePoolSpec({ ...valid, autoscale: {} })).autoscale).toEqual({ targetMissRate: 0.01, scaleDownAfterMs: 600_000 })
    expect(Either.getOrThrow(decodePoolSpec(valid)).autoscale).toBeUndefined()
    expect(decodePoolSpec({ ...valid, autoscale: { targetMissRate: 1, maxIdle: -2, scaleDownAfterMs: 0 } })).toEqual(Either.left([
      "autoscale.targetMissRate must be a number between 0 and 1 (exclusive)",
      "autoscale.maxIdle must be a whole number ≥ 0",
      "autoscale.scaleDownAfterMs must be a positive number of milliseconds"
    ]))
    expect(decodePoolSpec({ ...valid, autoscale: { maxIdle: 11 } })).toEqual(Either.left(["autoscale.maxIdle (11) must be ≤ maxTotal (10)"]))
    expect(decodePoolSpec({ ...valid, autoscale: { maxIdle: 2 } })).toEqual(Either.left(["autoscale.maxIdle (2) must be ≥ minIdle (3)"]))
  })
})

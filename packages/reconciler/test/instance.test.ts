import { describe, expect, it } from "@effect/vitest"
import { Equal } from "effect"
import { applyPatch, Instance, newInstance } from "../src/index.js"

describe("Instance", () => {
  const made = newInstance({
    id: "a",
    pool: "p",
    name: "box-a",
    status: "idle",
    now: new Date(Date.UTC(2026, 0, 1)),
    handles: { key: "k" },
    attributes: { owner: "ada" }
  })

  it("Instance.trusted makes what the constructor makes: same class, same fields, equal", () => {
    const trusted = Instance.trusted({ ...made })
    expect(trusted).toBeInstanceOf(Instance)
    expect(trusted).toStrictEqual(made)
    expect(Equal.equals(trusted, made)).toBe(true)
    expect(Equal.equals(trusted, Instance.trusted({ ...made, status: "claimed" }))).toBe(false)
  })

  it("applyPatch merges the maps: the keys given are set, the others kept; the row itself is not changed", () => {
    const patched = applyPatch(made, { handles: { other: "o" }, attributes: { owner: "grace" }, url: "https://box-a" }, { status: "claimed" })
    expect(patched).toMatchObject({ status: "claimed", url: "https://box-a", handles: { key: "k", other: "o" }, attributes: { owner: "grace" } })
    expect(made).toMatchObject({ status: "idle", url: null, handles: { key: "k" }, attributes: { owner: "ada" } })
  })
})

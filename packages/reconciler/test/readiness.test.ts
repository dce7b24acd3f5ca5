import { describe, expect, it } from "@effect/vitest"
import { newInstance, type ProbeAnswer, readinessTargets, readyActions } from "../src/index.js"
import { testSpec } from "./support/in-memory-world.js"

const spec = testSpec()
const starting = (id: string, url: string | null = `http://${id}.test`) =>
  newInstance({ id, pool: spec.name, name: `agent-${id}`, status: "starting", url, deployStatus: "DEPLOYING", now: new Date(0) })

describe("readiness between passes", () => {
  it("probes starting rows with a URL; marks idle those that answered ready, with the version they reported", () => {
    const rows = [starting("a"), starting("b"), starting("c"), starting("d", null)]
    expect(readinessTargets(spec, rows).map((t) => t.id)).toEqual(["a", "b", "c"])
    const answers = new Map<string, ProbeAnswer>([
      ["a", { health: "ready", runtimeVersion: "0.7.3" }],
      ["b", "ready"],
      ["c", { health: "not-ready", runtimeVersion: "0.7.3" }]
    ])
    expect(readyActions(spec, rows, answers).map((a) => a._tag === "MarkIdle" && [a.id, a.deployStatus, a.runtimeVersion])).toEqual([
      ["a", "SUCCESS", "0.7.3"],
      ["b", "SUCCESS", undefined]
    ])
  })
})

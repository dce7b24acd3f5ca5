import { expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { demo, DemoLive } from "../src/pool.js"

it.effect("the in-memory demo fills the pool, claims one agent and backfills it", () =>
  Effect.gen(function*() {
    const lines = yield* demo
    expect(lines).toEqual([
      "pass 1: created 3, marked idle 0 → 3 starting",
      "pass 2: created 0, marked idle 3 → 3 idle",
      expect.stringMatching(/^claimed (\S{12}) \(demo-agent-\1\) for tokyo-trip-planner: session-\1$/),
      "pass 3: backfilled 1 → 1 starting, 2 idle, 1 claimed"
    ])
  }).pipe(Effect.provide(DemoLive)))

/**
 * What a pass says: one line, at debug when it did nothing, info when it acted, warning when something
 * failed (with what failed). The lines are captured here, never printed.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, LogLevel } from "effect"
import { Controller, TransientError } from "../src/index.js"
import { InMemoryComputeControl } from "../src/testing/index.js"
import { testSpec, world } from "./support/in-memory-world.js"

interface Line {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
}

/** Runs `body` with every log line (debug included) captured, and returns the lines of each pass it ran. */
const capturingPassLines = <A, E, R>(body: (lines: Effect.Effect<ReadonlyArray<Line>>) => Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const captured: Array<Line> = []
    const capture = Logger.make(({ annotations, logLevel, message }) => {
      const text = Array.isArray(message) ? message.join(" ") : String(message)
      const line: Line = { level: logLevel.label, message: text, annotations: Object.fromEntries(annotations) }
      captured.push(line)
    })
    const passLines = Effect.sync(() => captured.filter((l) => /^pass \d+:/.test(l.message)))
    return body(passLines).pipe(
      Effect.provide(Layer.merge(Logger.replace(Logger.defaultLogger, capture), Logger.minimumLogLevel(LogLevel.All)))
    )
  })

describe("pass logs", () => {
  it.effect("a pass that acts logs one info line; a pass that does nothing logs at debug", () =>
    capturingPassLines((lines) =>
      Effect.gen(function*() {
        const controller = yield* Controller
        yield* controller.runPass
        expect(yield* lines).toEqual([
          { level: "INFO", message: expect.stringMatching(/^pass 1: 2 Create in \d+ ms$/), annotations: expect.objectContaining({ pool: "pool", pass: 1, outcome: "ok" }) }
        ])
        yield* controller.runPass
        yield* controller.runPass
        const [, second, third] = yield* lines
        expect(second).toMatchObject({ level: "INFO", message: expect.stringMatching(/^pass 2: 2 MarkIdle/) })
        expect(third).toMatchObject({ level: "DEBUG", message: expect.stringMatching(/^pass 3: nothing to do in \d+ ms$/) })
        expect(yield* lines).toHaveLength(3)
      }).pipe(Effect.provide(world(testSpec())))))

  it.effect("a pass with a failure logs one warning that says what failed", () =>
    capturingPassLines((lines) =>
      Effect.gen(function*() {
        const controller = yield* Controller
        const compute = yield* InMemoryComputeControl
        yield* compute.failNext(2, new TransientError({ operation: "create", message: "upstream 502" }), "create")
        yield* controller.runPass
        expect(yield* lines).toEqual([
          {
            level: "WARN",
            message: expect.stringMatching(/^pass 1: 2 Create; 2 failed \(Create: .*upstream 502.*\) in \d+ ms$/),
            annotations: expect.objectContaining({ outcome: "degraded" })
          }
        ])
      }).pipe(Effect.provide(world(testSpec())))))
})

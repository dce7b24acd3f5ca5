import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Tracer } from "effect"
import { spansExported, withSpanWhenExported } from "../src/index.js"

/** The span around the code, if any, by name. */
const spanName = Effect.map(Effect.option(Effect.currentSpan), Option.map((span) => span.name))

/** A tracer that sends spans somewhere (here: a list), as an OTLP exporter would. */
const exporting = (names: Array<string>) => {
  const own = Effect.runSync(Effect.tracer)
  return Tracer.make({
    span: (name, parent, context, links, startTime, kind, options) => {
      names.push(name)
      return own.span(name, parent, context, links, startTime, kind, options)
    },
    context: (f) => f()
  })
}

describe("withSpanWhenExported", () => {
  it.effect("with Effect's own tracer: no span (nobody would see it)", () =>
    Effect.gen(function*() {
      expect(yield* spansExported).toBe(false)
      expect(yield* withSpanWhenExported("Store.claim")(spanName)).toEqual(Option.none())
    }))

  it.effect("with a tracer that exports: the span, named", () =>
    Effect.gen(function*() {
      const names: Array<string> = []
      const traced = Effect.all([spansExported, withSpanWhenExported("Store.claim")(spanName)]).pipe(Effect.withTracer(exporting(names)))
      expect(yield* traced).toEqual([true, Option.some("Store.claim")])
      expect(names).toEqual(["Store.claim"])
    }))
})

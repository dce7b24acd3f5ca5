import { Effect, Layer, Option, Stream } from "effect"
import { Leadership } from "./services.js"

/** One replica: it always leads. For a single server, tests and examples. */
export const SingleLeader: Layer.Layer<Leadership> = Layer.succeed(Leadership, {
  whileLeader: (effect) => Effect.map(effect, Option.some),
  leading: Stream.make(true)
})

import { Effect, Layer, Option, Stream } from "effect"
import { Leadership } from "../services.js"

/** A replica that never leads (another one does): it serves claims and runs no pass. */
export const NeverLeader: Layer.Layer<Leadership> = Layer.succeed(Leadership, {
  whileLeader: () => Effect.succeed(Option.none()),
  leading: Stream.make(false)
})

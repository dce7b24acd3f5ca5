import { Effect } from "effect"
import { demo, DemoLive } from "./pool.js"

const lines = await Effect.runPromise(demo.pipe(Effect.provide(DemoLive)))
for (const line of lines) console.log(line)

/** `plan` over steady pools of 10k and 100k rows: median wall time of one call. */
import { plan } from "../src/index.js"
import { steadyWorld } from "../test/support/worlds.js"

const median = (xs: Array<number>) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const time = (size: number, repeats: number) => {
  const { observation, spec } = steadyWorld(size)
  for (let i = 0; i < 3; i++) plan(spec, observation) // warm up the JIT
  const samples: Array<number> = []
  let actions = 0
  for (let i = 0; i < repeats; i++) {
    const started = performance.now()
    actions = plan(spec, observation).length
    samples.push(performance.now() - started)
  }
  if (actions === 0) throw new Error("bench world produced no actions: it would measure nothing")
  return median(samples)
}

export const run = async (): Promise<Record<string, number>> => ({
  "plan.10k.ms": time(10_000, 21),
  "plan.100k.ms": time(100_000, 7)
})

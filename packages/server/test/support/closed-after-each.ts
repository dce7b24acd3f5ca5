/** For test files only (it registers a vitest hook): the benchmarks share the rest of the support modules. */
import { afterEach } from "vitest"

/** Keeps the world a test opens and closes it after the test, whatever its outcome. Call at the file's top level. */
export const closedAfterEach = <W extends { readonly close: () => Promise<unknown> }>() => {
  let current: W | undefined
  afterEach(async () => {
    await current?.close()
    current = undefined
  })
  return (world: W): W => (current = world)
}

/**
 * A pool on the in-memory providers: declare it, let the controller fill it, claim an agent,
 * watch the backfill. The same program runs on Railway by swapping the provider layers.
 */
import { Controller, countByStatus, type Instance, instanceStatuses, PoolSpec } from "@warmpool/reconciler"
import { inMemoryServices, InMemoryStoreControl } from "@warmpool/reconciler/testing"
import { Effect, Layer } from "effect"

export const spec = new PoolSpec({
  name: "demo",
  namePrefix: "demo-agent-",
  minIdle: 3,
  maxTotal: 10,
  template: { image: "ghcr.io/example/agent-runtime:latest", env: { LOG_LEVEL: "info" } }
})

const countsLine = (rows: ReadonlyArray<Instance>) => {
  const counts = countByStatus(rows)
  return instanceStatuses.filter((s) => counts[s] > 0).map((s) => `${counts[s]} ${s}`).join(", ") || "empty"
}

/** Runs the demo; returns what happened, line by line. */
export const demo = Effect.gen(function*() {
  const controller = yield* Controller
  const store = yield* InMemoryStoreControl
  const lines: Array<string> = []
  const log = (line: string) => Effect.sync(() => lines.push(line))

  for (let pass = 1; pass <= 2; pass++) {
    const summary = yield* controller.runPass
    yield* log(`pass ${summary.pass}: created ${summary.planned.Create}, marked idle ${summary.planned.MarkIdle} → ${countsLine(yield* store.rows)}`)
  }
  const claim = yield* controller.claim({ label: "tokyo-trip-planner" })
  yield* log(`claimed ${claim.instance.id} (${claim.instance.name}) for ${claim.instance.attributes.label}: ${claim.instance.attributes.session}`)
  const backfill = yield* controller.runPass
  yield* log(`pass ${backfill.pass}: backfilled ${backfill.planned.Create} → ${countsLine(yield* store.rows)}`)
  return lines
})

/** The pool's world: the controller over in-memory services (no background timer: the demo drives it). */
export const DemoLive = Controller.layer(spec, { background: false }).pipe(Layer.provideMerge(inMemoryServices()))

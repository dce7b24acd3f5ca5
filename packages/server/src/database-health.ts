/**
 * Whether the database answers, known at all times without asking it on the request's behalf: `/healthz` reads
 * the last probe and never waits for Postgres (a partition would hold it as long as it lasts).
 */
import { SqlClient } from "@effect/sql"
import { Context, Duration, Effect, Layer, Ref, Schedule } from "effect"

export interface DatabaseState {
  readonly reachable: boolean
  /** Since when it has been so. */
  readonly since: Date
  /** Why the last probe failed, when it did. */
  readonly error?: string
}

/** Probes once a second, each probe given a second: an outage shows within two seconds, a recovery within one. */
const PROBE_EVERY = Duration.seconds(1)

export class DatabaseHealth extends Context.Tag("@warmpool/server/DatabaseHealth")<
  DatabaseHealth,
  { readonly current: Effect.Effect<DatabaseState> }
>() {}

export const DatabaseHealthLive = Layer.scoped(
  DatabaseHealth,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const state = yield* Ref.make<DatabaseState>({ reachable: true, since: new Date() })
    const probe = Effect.disconnect(sql`SELECT 1`).pipe(
      Effect.timeoutFail({ duration: PROBE_EVERY, onTimeout: () => new Error(`no answer within ${Duration.format(PROBE_EVERY)}`) }),
      Effect.match({
        onFailure: (error) => ({ reachable: false, error: error.message }),
        onSuccess: () => ({ reachable: true })
      }),
      Effect.flatMap((seen) =>
        Ref.update(state, (last) =>
          last.reachable === seen.reachable
            ? { ...last, ...seen }
            : { ...seen, since: new Date() })
      )
    )
    yield* Effect.forkScoped(Effect.repeat(probe, Schedule.spaced(PROBE_EVERY)))
    return { current: Ref.get(state) }
  })
)

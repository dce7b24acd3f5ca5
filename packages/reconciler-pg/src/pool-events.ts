/**
 * `PoolEvents` on Postgres: `pg_notify` to publish, `LISTEN` on a connection of its own to subscribe.
 * The listening connection is watched: when it errors or ends the stream fails, so the subscriber knows
 * it may have missed events (@effect/sql-pg's own `listen` swallows such errors and goes quiet).
 */
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted, Stream } from "effect"
import Pg from "pg"
import { StoreError, decodePoolEvent, encodePoolEvent, ListeningEvent, type PoolEvent, PoolEvents } from "@warmpool/reconciler"

/** The channel every replica of every pool shares; events name their pool. */
export const POOL_EVENTS_CHANNEL = "warmpool_pool_events"

const lost = (message: string, cause?: unknown) =>
  new StoreError({ operation: "poolEvents.listen", message: cause instanceof Error ? `${message}: ${cause.message}` : message, retryable: true })

export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { config } = yield* PgClient.PgClient
  const connection: Pg.ClientConfig = {
    connectionString: config.url === undefined ? undefined : Redacted.value(config.url),
    host: config.host,
    port: config.port,
    database: config.database,
    user: config.username,
    password: config.password === undefined ? undefined : Redacted.value(config.password),
    ssl: config.ssl,
    application_name: "warmpool-pool-events"
  }

  const subscribe = Stream.asyncPush<PoolEvent, StoreError>((emit) =>
    Effect.gen(function*() {
      const client = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            const client = new Pg.Client(connection)
            // Attached before connecting: an error at any point must not become an unhandled event.
            client.on("error", (error) => emit.fail(lost("the listening connection failed", error)))
            client.on("end", () => emit.fail(lost("the listening connection closed")))
            await client.connect()
            return client
          },
          catch: (cause) => lost("cannot open the listening connection", cause)
        }),
        (client) => Effect.promise(() => client.end().catch(() => undefined)).pipe(Effect.timeoutOption(1000))
      )
      client.on("notification", (message) => {
        if (message.channel !== POOL_EVENTS_CHANNEL || message.payload === undefined) return
        const event = decodePoolEvent(message.payload)
        if (event !== undefined) emit.single(event)
      })
      yield* Effect.tryPromise({
        try: () => client.query(`LISTEN ${POOL_EVENTS_CHANNEL}`),
        catch: (cause) => lost("LISTEN failed", cause)
      })
      emit.single(ListeningEvent.make({}))
    }), { bufferSize: "unbounded" })

  const service: PoolEvents["Type"] = {
    // pg_notify, not NOTIFY: a payload can be a bound parameter only in a function call.
    publish: (event) =>
      sql`SELECT pg_notify(${POOL_EVENTS_CHANNEL}, ${encodePoolEvent(event)})`.pipe(
        Effect.asVoid,
        Effect.mapError((error) => new StoreError({ operation: "poolEvents.publish", message: error.message, retryable: true })),
        Effect.withSpan("PgPoolEvents.publish")
      ),
    subscribe
  }
  return service
})

/** `PoolEvents` over the Postgres of the `PgClient` in context: every replica on the database hears every other. */
export const PgPoolEvents = {
  layer: Layer.effect(PoolEvents, make)
}

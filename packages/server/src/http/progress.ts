/**
 * Long operator actions as the replaced system streamed them: unnamed Server-Sent Events (`data: {...}`), so its
 * web client's `EventSource` `onmessage` hears every one, the last being `{"type": "complete", …}`.
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Duration, Effect, Stream } from "effect"

/** What a quiet stream sends now and then, so that proxies keep the connection. */
const KEEP_ALIVE = Duration.seconds(15)

export type Send = (data: Readonly<Record<string, unknown>>) => Effect.Effect<void>

/**
 * The response of `run`, which says how far it is with `send` and ends the stream with what it returns (the
 * `complete` event). The action runs for as long as the stream is read: a client that goes away interrupts it.
 */
export const progressResponse = <E>(run: (send: Send) => Effect.Effect<Readonly<Record<string, unknown>>, E>) => {
  const events = Stream.asyncPush<string>((emit) => {
    const send: Send = (data) => Effect.sync(() => emit.single(`data: ${JSON.stringify(data)}\n\n`))
    return run(send).pipe(
      Effect.catchAll((error) => Effect.succeed({ ok: false, error: error instanceof Error ? error.message : String(error) })),
      Effect.flatMap((complete) => send({ type: "complete", ...complete })),
      Effect.ensuring(Effect.sync(() => emit.end())),
      Effect.forkScoped
    )
  }, { bufferSize: "unbounded" })
  const keepAlive = Stream.tick(KEEP_ALIVE).pipe(Stream.drop(1), Stream.as(": keep-alive\n\n"))
  return HttpServerResponse.stream(Stream.merge(events, keepAlive, { haltStrategy: "left" }).pipe(Stream.encodeText), {
    contentType: "text/event-stream",
    headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
  })
}

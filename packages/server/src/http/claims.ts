/**
 * `POST /api/pool/claim` and its Server-Sent Events twin `/api/pool/claim/stream`: one claim, two ways of
 * answering. The stream says how far the claim is and ends with what `/claim` would have answered.
 */
import { Sse } from "@effect/experimental"
import { HttpServerResponse } from "@effect/platform"
import { type ClaimProgress, type ClaimResult, Controller } from "@warmpool/reconciler"
import { Duration, Effect, Stream } from "effect"
import { BadGateway, BadRequest, type ClaimAnswer, type ClaimBody, databaseUnavailable, Unavailable } from "../api/api.js"
import { joinUrlProblem } from "../convos/join-url.js"

type Environment = "staging" | "dev" | "production"
type ClaimHttpError = BadRequest | BadGateway | Unavailable

/** What an SSE client hears while waiting, so that proxies do not close a quiet connection. */
const KEEP_ALIVE = Duration.seconds(15)

const answerOf = (result: ClaimResult): typeof ClaimAnswer.Type => ({
  inviteUrl: result.inviteUrl,
  conversationId: result.conversationId,
  instanceId: result.instance.id,
  joined: result.joined,
  gatewayToken: result.instance.gatewayToken,
  gatewayUrl: result.instance.url
})

/** The claim a body asks for, with its errors as HTTP answers. */
export const runClaim = (
  environment: Environment,
  payload: typeof ClaimBody.Type,
  onProgress?: (progress: ClaimProgress) => Effect.Effect<void>
): Effect.Effect<typeof ClaimAnswer.Type, ClaimHttpError, Controller> =>
  Effect.gen(function*() {
    const joinUrl = payload.joinUrl ?? undefined
    const problem = joinUrlProblem(environment, joinUrl)
    if (problem !== undefined) return yield* new BadRequest({ message: problem })
    const controller = yield* Controller
    const result = yield* controller.claim(
      { agentName: payload.agentName ?? undefined, instructions: payload.instructions ?? undefined, joinUrl },
      { waitMs: payload.waitMs ?? 0, onProgress }
    ).pipe(
      Effect.catchTags({
        NoIdleInstanceError: (e) => new Unavailable({ message: e.message }),
        ClaimFailedError: (e) => new BadGateway({ message: e.message }),
        ProvisionRejectedError: (e) => new BadRequest({ message: `the instance refused the request: ${e.message}` }),
        StoreError: databaseUnavailable
      })
    )
    return answerOf(result)
  })

const statusOf: Record<ClaimHttpError["_tag"], number> = { BadRequest: 400, BadGateway: 502, Unavailable: 503 }

const frame = (event: string, data: unknown) => Sse.encoder.write({ _tag: "Event", event, id: undefined, data: JSON.stringify(data) })

const progressFrame = (progress: ClaimProgress) => {
  switch (progress._tag) {
    case "Queued":
      return frame("queued", { position: progress.position })
    case "Claimed":
      return frame("claimed", { instanceId: progress.instanceId })
    case "Provisioning":
      return frame("provisioning", { instanceId: progress.instanceId })
  }
}

/** The error event: the status and body `/claim` would have answered (and, for a 503, when to come back). */
const errorFrame = (error: ClaimHttpError) =>
  frame("error", {
    status: statusOf[error._tag],
    _tag: error._tag,
    message: error.message,
    ...(error._tag === "Unavailable" ? { retryAfter: 5 } : {})
  })

/**
 * The claim as a stream of events. The claim runs for as long as the stream is read: a client that goes away
 * interrupts it, and a claim still waiting in line leaves nothing behind.
 */
export const claimEventStream = (environment: Environment, payload: typeof ClaimBody.Type) =>
  Effect.map(Effect.context<Controller>(), (context) => {
    const events = Stream.asyncPush<string>((emit) =>
      runClaim(environment, payload, (progress) => Effect.sync(() => emit.single(progressFrame(progress)))).pipe(
        Effect.match({ onSuccess: (answer) => frame("done", answer), onFailure: errorFrame }),
        Effect.flatMap((last) => Effect.sync(() => emit.single(last)).pipe(Effect.zipRight(Effect.sync(() => emit.end())))),
        Effect.provide(context),
        Effect.forkScoped
      ), { bufferSize: "unbounded" })
    const keepAlive = Stream.tick(KEEP_ALIVE).pipe(Stream.drop(1), Stream.as(": keep-alive\n\n"))
    const body = Stream.merge(events, keepAlive, { haltStrategy: "left" }).pipe(Stream.encodeText)
    return HttpServerResponse.stream(body, {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
    })
  })

/**
 * `POST /api/pool/claim` and its Server-Sent Events twin `/api/pool/claim/stream`: one claim, two ways of
 * answering. The stream says how far the claim is and ends with what `/claim` would have answered.
 */
import { Sse } from "@effect/experimental"
import { HttpServerResponse } from "@effect/platform"
import { ConvosProvisioned } from "@warmpool/providers-convos"
import type { ClaimProgress, ControllerService, Instance } from "@warmpool/reconciler"
import { Duration, Effect, Schema, Stream } from "effect"
import { BadGateway, BadRequest, type ClaimAnswer, type ClaimBody, databaseUnavailable, Unavailable } from "../api/api.js"
import { joinUrlProblem } from "../convos/join-url.js"
import { GATEWAY_TOKEN_HANDLE } from "../convos/secrets.js"

type Environment = "staging" | "dev" | "production"
type ClaimHttpError = BadRequest | BadGateway | Unavailable

/** What an SSE client hears while waiting, so that proxies do not close a quiet connection. */
const KEEP_ALIVE = Duration.seconds(15)

const isConvos = Schema.is(ConvosProvisioned)

const answerOf = (provisioned: ConvosProvisioned, instance: Instance): typeof ClaimAnswer.Type => ({
  inviteUrl: provisioned.inviteUrl,
  conversationId: provisioned.conversationId,
  instanceId: instance.id,
  joined: provisioned.joined,
  gatewayToken: instance.handles[GATEWAY_TOKEN_HANDLE] ?? null,
  gatewayUrl: instance.url
})

/**
 * The claim a body asks for on the pool `controller`, with its errors as HTTP answers. The controller is an
 * argument, not a service: providing one per claim would copy the request's whole context each time.
 */
export const runClaim = (
  controller: ControllerService,
  environment: Environment,
  payload: typeof ClaimBody.Type,
  onProgress?: (progress: ClaimProgress) => Effect.Effect<void>
): Effect.Effect<typeof ClaimAnswer.Type, ClaimHttpError> =>
  Effect.gen(function*() {
    const joinUrl = payload.joinUrl ?? undefined
    const problem = joinUrlProblem(environment, joinUrl)
    if (problem !== undefined) return yield* new BadRequest({ message: problem })
    const result = yield* controller.claim(
      { agentName: payload.agentName ?? undefined, instructions: payload.instructions ?? undefined, joinUrl },
      { waitMs: payload.waitMs ?? 0, onProgress }
    ).pipe(
      Effect.catchTags({
        NoIdleInstanceError: (e) => new Unavailable({ message: e.message }),
        ClaimFailedError: (e) => new BadGateway({ message: e.message }),
        ProvisionRejectedError: (e) => new BadRequest({ message: `the instance refused the request: ${e.message}` }),
        InvalidClaimError: (e) => new BadRequest({ message: e.message }),
        StoreError: databaseUnavailable
      })
    )
    // Every pool this server keeps runs the Convos runtime; anything else is a wiring mistake, not a bad request.
    if (!isConvos(result.result)) return yield* Effect.dieMessage(`pool ${controller.spec.name}: its runtime's answer is not a Convos one`)
    return answerOf(result.result, result.instance)
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
export const claimEventStream = (controller: ControllerService, environment: Environment, payload: typeof ClaimBody.Type) =>
  Effect.sync(() => {
    const events = Stream.asyncPush<string>((emit) =>
      runClaim(controller, environment, payload, (progress) => Effect.sync(() => emit.single(progressFrame(progress)))).pipe(
        Effect.match({ onSuccess: (answer) => frame("done", answer), onFailure: errorFrame }),
        Effect.flatMap((last) => Effect.sync(() => emit.single(last)).pipe(Effect.zipRight(Effect.sync(() => emit.end())))),
        Effect.forkScoped
      ), { bufferSize: "unbounded" })
    const keepAlive = Stream.tick(KEEP_ALIVE).pipe(Stream.drop(1), Stream.as(": keep-alive\n\n"))
    const body = Stream.merge(events, keepAlive, { haltStrategy: "left" }).pipe(Stream.encodeText)
    return HttpServerResponse.stream(body, {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
    })
  })

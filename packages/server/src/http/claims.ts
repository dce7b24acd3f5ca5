/**
 * `POST /api/pool/claim` and its Server-Sent Events twins, `POST /api/pool/claim/stream` (named events) and the
 * replaced system's `GET /api/pool/claim/stream` (unnamed `{type: step | complete}` events, for EventSource): one
 * claim, three ways of answering. A claim with a `joinUrl` takes no second instance for that conversation, and
 * one with an `Idempotency-Key` answers a retry as it answered the first time.
 */
import { Sse } from "@effect/experimental"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { type ConvosClaim, ConvosProvisioned } from "@warmpool/providers-convos"
import type { ClaimProgress, ControllerService, Instance } from "@warmpool/reconciler"
import { Duration, Effect, Exit, Option, Schedule, Schema, Stream } from "effect"
import { createHash, randomUUID } from "node:crypto"
import { BadGateway, BadRequest, ClaimAnswer, type ClaimBody, ConversationTaken, databaseUnavailable, Unavailable } from "../api/api.js"
import { type Coordination, type IdempotencyStart, RESERVATION_TTL_MS } from "../coordination/coordination.js"
import { joinUrlProblem } from "../convos/join-url.js"
import { GATEWAY_TOKEN_HANDLE } from "../convos/secrets.js"

type Environment = "staging" | "dev" | "production"
type ClaimHttpError = BadRequest | BadGateway | Unavailable | ConversationTaken

/** What an SSE client hears while waiting, so that proxies do not close a quiet connection. */
const KEEP_ALIVE = Duration.seconds(15)

/** The replaced system's defaults for what a claim leaves out. */
export const DEFAULT_AGENT_NAME = "Assistant"
export const DEFAULT_INSTRUCTIONS = "You are a helpful AI assistant."
export const DEFAULT_SOURCE = "api"

const isConvos = Schema.is(ConvosProvisioned)

const answerOf = (provisioned: ConvosProvisioned, instance: Instance, request: ConvosClaim): typeof ClaimAnswer.Type => ({
  inviteUrl: provisioned.inviteUrl ?? request.joinUrl ?? null,
  conversationId: provisioned.conversationId,
  instanceId: instance.id,
  joined: provisioned.joined,
  status: instance.status === "pending_acceptance" ? "pending_acceptance" : "claimed",
  agentName: request.agentName ?? DEFAULT_AGENT_NAME,
  gatewayToken: instance.handles[GATEWAY_TOKEN_HANDLE] ?? null,
  gatewayUrl: instance.url
})

/** The runtime's request: the body's fields, with the replaced system's defaults for what it leaves out. */
const requestOf = (payload: typeof ClaimBody.Type): ConvosClaim => ({
  agentName: payload.agentName ?? DEFAULT_AGENT_NAME,
  instructions: payload.instructions ?? DEFAULT_INSTRUCTIONS,
  source: payload.source ?? DEFAULT_SOURCE,
  ...(payload.joinUrl ? { joinUrl: payload.joinUrl } : {}),
  ...(payload.profileImage != null ? { profileImage: payload.profileImage } : {}),
  ...(payload.metadata != null ? { metadata: payload.metadata } : {})
})

/**
 * Runs `claim` holding `joinUrl`'s conversation: refused with the instance that has it (claiming, claimed, awaiting
 * acceptance) or while another claim for it runs. Race-safe across replicas: the reservation is made under a lock.
 */
const oneInstancePerConversation = <A, E>(
  coordination: Coordination["Type"],
  joinUrl: string | undefined,
  claim: (taken: (instanceId: string) => Effect.Effect<void>) => Effect.Effect<A, E>
): Effect.Effect<A, E | ConversationTaken | Unavailable> => {
  if (joinUrl === undefined) return claim(() => Effect.void)
  const holder = randomUUID()
  return Effect.gen(function*() {
    const held = yield* coordination.reserveConversation(joinUrl, holder).pipe(Effect.mapError(databaseUnavailable))
    if (Option.isSome(held)) {
      const { instanceId } = held.value
      return yield* new ConversationTaken({
        instanceId,
        message: instanceId === null
          ? "a claim for this conversation (joinUrl) is running; one instance per conversation"
          : `this conversation (joinUrl) has its instance already: ${instanceId}; one instance per conversation`
      })
    }
    return yield* claim((instanceId) => Effect.ignore(coordination.attachConversation(joinUrl, holder, instanceId))).pipe(
      // The claim is over: a won one's row names the conversation itself from now on.
      Effect.ensuring(Effect.ignore(coordination.releaseConversation(joinUrl, holder)))
    )
  })
}

/**
 * The claim a body asks for on the pool `controller`, with its errors as HTTP answers. The controller is an
 * argument, not a service: providing one per claim would copy the request's whole context each time.
 */
export const runClaim = (
  controller: ControllerService,
  coordination: Coordination["Type"],
  environment: Environment,
  payload: typeof ClaimBody.Type,
  onProgress?: (progress: ClaimProgress) => Effect.Effect<void>
): Effect.Effect<typeof ClaimAnswer.Type, ClaimHttpError> =>
  Effect.gen(function*() {
    const request = requestOf(payload)
    const problem = joinUrlProblem(environment, request.joinUrl)
    if (problem !== undefined) return yield* new BadRequest({ message: problem })
    const result = yield* oneInstancePerConversation(coordination, request.joinUrl, (taken) =>
      controller.claim(request, {
        waitMs: payload.waitMs ?? 0,
        onProgress: (progress) =>
          Effect.zipRight(progress._tag === "Claimed" ? taken(progress.instanceId) : Effect.void, onProgress?.(progress) ?? Effect.void)
      })).pipe(
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
    return answerOf(result.result, result.instance, request)
  })

const fingerprint = (payload: typeof ClaimBody.Type) => createHash("sha256").update(JSON.stringify(payload)).digest("hex")
const decodeAnswer = Schema.decodeUnknown(ClaimAnswer)

/**
 * `claim` once per Idempotency-Key (24 h): a retry gets the first answer; one arriving while the first runs waits
 * for it; a failed claim leaves nothing, so its retry claims. A key used for a different body is refused.
 */
export const idempotentClaim = (
  coordination: Coordination["Type"],
  key: string | undefined,
  payload: typeof ClaimBody.Type,
  claim: Effect.Effect<typeof ClaimAnswer.Type, ClaimHttpError>
): Effect.Effect<typeof ClaimAnswer.Type, ClaimHttpError> => {
  if (key === undefined) return claim
  return Effect.gen(function*() {
    const start = yield* coordination.startIdempotent(key, fingerprint(payload)).pipe(
      // Until the first claim with this key has answered (or failed: then this one claims).
      Effect.repeat(Schedule.spaced("100 millis").pipe(Schedule.whileInput((s: IdempotencyStart) => s._tag === "Running"), Schedule.passthrough)),
      Effect.timeoutFail({ duration: RESERVATION_TTL_MS, onTimeout: () => new Unavailable({ message: "a claim with this Idempotency-Key is still running" }) }),
      Effect.catchTag("StoreError", (e) => Effect.fail(databaseUnavailable(e)))
    )
    switch (start._tag) {
      case "Mismatch":
        return yield* new BadRequest({ message: "this Idempotency-Key was used for a different claim" })
      case "Answered":
        return yield* decodeAnswer(start.answer).pipe(Effect.orDie)
      default:
        return yield* claim.pipe(Effect.onExit((exit) =>
          Effect.ignore(Exit.isSuccess(exit) ? coordination.finishIdempotent(key, exit.value) : coordination.abandonIdempotent(key))))
    }
  })
}

const statusOf: Record<ClaimHttpError["_tag"], number> = { BadRequest: 400, BadGateway: 502, Unavailable: 503, ConversationTaken: 409 }

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
export const claimEventStream = (controller: ControllerService, coordination: Coordination["Type"], environment: Environment, payload: typeof ClaimBody.Type) =>
  eventStream((emit) =>
    runClaim(controller, coordination, environment, payload, (progress) => emit(progressFrame(progress))).pipe(
      Effect.match({ onSuccess: (answer) => frame("done", answer), onFailure: errorFrame })
    ))

/**
 * A response of Server-Sent Events: what `run` emits, then the frame it ends with; comments keep a quiet
 * connection open. The claim runs for as long as the stream is read: a client that goes away interrupts it.
 */
const eventStream = (run: (emit: (frame: string) => Effect.Effect<void>) => Effect.Effect<string>) =>
  Effect.sync(() => {
    const events = Stream.asyncPush<string>((emit) =>
      run((frame) => Effect.sync(() => emit.single(frame))).pipe(
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

/** The replaced system's frames: unnamed events, their kind in `type`. */
const unnamed = (data: Record<string, unknown>) => `data: ${JSON.stringify(data)}\n\n`
const step = (name: "claim" | "provision" | "convo" | "cleanup", status: "active" | "ok" | "fail" | "skip", message: string) =>
  unnamed({ type: "step", step: name, status, message })

/**
 * The claim as the replaced system's `GET /api/pool/claim/stream` told it: steps `claim` (finding an instance),
 * `provision` (the runtime's call), `convo` (recording the conversation), `cleanup` (after a failed provision),
 * each `active` then `ok`, `fail` or `skip`; then `complete`.
 */
export const replacedClaimEventStream = (
  controller: ControllerService,
  coordination: Coordination["Type"],
  environment: Environment,
  payload: typeof ClaimBody.Type
) =>
  eventStream((emit) =>
    Effect.gen(function*() {
      let claimed: string | undefined
      const joining = payload.joinUrl != null
      const onProgress = (progress: ClaimProgress) => {
        switch (progress._tag) {
          case "Queued":
            return emit(step("claim", "active", `Waiting for an idle instance (position ${progress.position})…`))
          case "Claimed":
            claimed = progress.instanceId
            return emit(step("claim", "ok", `Claimed ${progress.instanceId}`))
          case "Provisioning":
            return emit(step("provision", "active", joining ? "Joining conversation…" : "Configuring agent…"))
        }
      }
      yield* emit(step("claim", "active", "Finding available instance…"))
      const outcome = yield* Effect.either(runClaim(controller, coordination, environment, payload, onProgress))
      if (outcome._tag === "Right") {
        const answer = outcome.right
        if (answer.status === "pending_acceptance") {
          yield* emit(step("provision", "ok", "Join is waiting for acceptance"))
          yield* emit(step("convo", "ok", "Instance reserved while join waits for approval"))
        } else {
          const conversation = `${answer.conversationId?.slice(0, 8) ?? ""}…`
          yield* emit(step("provision", "ok", "Agent provisioned on instance"))
          yield* emit(step("convo", "ok", answer.joined ? `Joined conversation ${conversation}` : `Created conversation ${conversation}`))
        }
        return unnamed({ type: "complete", ok: true, ...answer })
      }
      const error = outcome.left
      if (claimed === undefined) yield* emit(step("claim", "fail", error.message))
      else {
        yield* emit(step("provision", "fail", error.message.slice(0, 200)))
        yield* emit(step("convo", "skip", ""))
        // A failed provision never returns an instance to idle here: it is set aside, the pool makes a new one.
        yield* emit(step("cleanup", "skip", "Instance set aside (crashed); the pool replaces it"))
      }
      return unnamed({ type: "complete", ok: false, error: error.message })
    }))

/** `GET /api/pool/claim/stream`'s query as a claim body: `metadata` is JSON; every field checked as `/claim` checks it. */
export const claimOfQuery = (query: Readonly<Record<string, string | undefined>>, decode: (u: unknown) => Effect.Effect<typeof ClaimBody.Type, BadRequest>) =>
  Effect.gen(function*() {
    const { metadata, ...fields } = query
    let parsed: unknown = undefined
    if (metadata !== undefined && metadata !== "") {
      try {
        parsed = JSON.parse(metadata)
      } catch {
        return yield* new BadRequest({ message: "metadata must be a JSON object of strings" })
      }
    }
    const present = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined && v !== ""))
    return yield* decode(parsed === undefined ? present : { ...present, metadata: parsed })
  })

/**
 * `POST /webhooks/railway/:secret`: Railway's deployment events, as triggers. The URL's secret is compared in
 * constant time and never logged; an event is checked (JSON, shape, the pool's environment, a service of the
 * pool) and then only wakes the controller — a crash, failure or OOM asks for a pass with a fresh listing, a
 * deploy or a wake-up asks for a readiness check and a refill (no listing). The listing stays the truth: a
 * lost webhook costs the time to the next tick, a forged one at most a pass.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { decodeWebhookEvent, needsListing, Railway, WEBHOOK_PATH } from "@warmpool/providers-railway"
import { InstanceStore } from "@warmpool/reconciler"
import { Effect, Either, Option, Redacted } from "effect"
import { poolsInContext } from "../http/pools.js"
import { digest, matchesDigest } from "../http/secrets.js"


const answer = (status: number, body: Readonly<Record<string, unknown>>) => HttpServerResponse.unsafeJson(body, { status })

const parseJson = (text: string): Either.Either<unknown, string> => {
  try {
    return Either.right(JSON.parse(text))
  } catch {
    return Either.left("the body is not valid JSON")
  }
}

/** The route, when the compute provider is Railway (otherwise there is nothing to listen to: 404). */
export const railwayWebhookRoute = (secret: Redacted.Redacted<string>) =>
  HttpApiBuilder.Router.use((router) =>
    Effect.gen(function*() {
      const railway = yield* Effect.serviceOption(Railway)
      if (Option.isNone(railway)) return
      const { ownsEnvironment } = railway.value
      const pools = yield* poolsInContext
      const store = yield* InstanceStore
      const expected = digest(Redacted.value(secret))

      const handle = Effect.gen(function*() {
        const params = yield* HttpRouter.params
        if (!matchesDigest(params.secret ?? "", expected)) return answer(401, { _tag: "Unauthorized", message: "wrong webhook secret" })
        const request = yield* HttpServerRequest.HttpServerRequest
        const text = yield* Effect.orElseSucceed(request.text, () => "")
        const event = Either.flatMap(parseJson(text), decodeWebhookEvent)
        if (Either.isLeft(event)) return answer(400, { _tag: "BadRequest", message: event.left })
        const { resource, type } = event.right
        if (!ownsEnvironment(resource.environment.id)) return answer(202, { accepted: false, reason: "an event of another environment" })
        // The pool whose row holds the service (pools are few; rows are read as a pass reads them).
        // Stops at the owner: the pools after it are not read.
        const owner = yield* Effect.findFirst(pools.all, (c) => Effect.map(store.list(c.spec.name), (rows) => rows.some((row) => row.serviceId === resource.service.id)))
        if (Option.isNone(owner)) return answer(202, { accepted: false, reason: "not a service of a pool" })
        const controller = owner.value
        yield* needsListing(type) ? controller.trigger : Effect.zipRight(controller.checkReadiness, controller.triggerRefill)
        yield* Effect.logDebug(`railway webhook: ${type} for service ${resource.service.id}`)
        return answer(202, { accepted: true, type })
      }).pipe(
        Effect.catchTag("StoreError", (error) => Effect.succeed(answer(503, { _tag: "Unavailable", message: `database unavailable: ${error.message}` })))
      )
      yield* router.post(`${WEBHOOK_PATH}/:secret`, handle)
    })
  )

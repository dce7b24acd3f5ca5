import { HttpApiBuilder } from "@effect/platform"
import { type Action, Controller, type Instance, InstanceStore, type PassSummary } from "@warmpool/reconciler"
import { Effect, Layer, Redacted } from "effect"
import { timingSafeEqual } from "node:crypto"
import { Authorization, BadGateway, BadRequest, Conflict, NotFound, PoolApi, Unauthorized, Unavailable } from "../api/api.js"
import { joinUrlProblem } from "../convos/join-url.js"

/** The row as the API shows it: no gateway token, no key hash, no inbox id. */
export const toPublic = (row: Instance) => ({
  id: row.id,
  name: row.name,
  status: row.status,
  serviceId: row.serviceId,
  url: row.url,
  deployStatus: row.deployStatus,
  agentName: row.agentName,
  conversationId: row.conversationId,
  inviteUrl: row.inviteUrl,
  createdAt: row.createdAt.toISOString(),
  claimedAt: row.claimedAt?.toISOString() ?? null,
  statusChangedAt: row.statusChangedAt.toISOString(),
  sourceBranch: row.sourceBranch,
  runtimeImage: row.runtimeImage,
  lastError: row.lastError
})

const toSummary = (summary: PassSummary) => ({ ...summary, startedAt: summary.startedAt.toISOString() })

const describeAction = (action: Action) => {
  switch (action._tag) {
    case "Create":
      return { kind: action._tag, detail: action.reason }
    case "Adopt":
      return { kind: action._tag, detail: `${action.service.name} (${action.service.serviceId})` }
    case "Delete":
      return { kind: action._tag, id: action.id, detail: `${action.reason}, from ${action.from}` }
    case "MarkCrashed":
      return { kind: action._tag, id: action.id, detail: action.reason }
    case "MarkIdle":
    case "Refresh":
      return { kind: action._tag, id: action.id, detail: action.deployStatus ?? "" }
    case "RecordService":
      return { kind: action._tag, id: action.id, detail: action.service.serviceId }
  }
}

const unavailable = (error: { readonly message: string }) => new Unavailable({ message: `database unavailable: ${error.message}` })

export const AuthorizationLive = (apiKey: Redacted.Redacted<string>) =>
  Layer.succeed(Authorization, {
    bearer: (token) => {
      const expected = Buffer.from(Redacted.value(apiKey))
      const given = Buffer.from(Redacted.value(token))
      // Constant time: the comparison takes as long whatever prefix matches.
      const ok = given.length === expected.length && timingSafeEqual(given, expected)
      return ok ? Effect.void : Effect.fail(new Unauthorized({ message: "missing or wrong bearer token (POOL_API_KEY)" }))
    }
  })

export const PublicLive = HttpApiBuilder.group(PoolApi, "public", (handlers) =>
  Effect.gen(function*() {
    const controller = yield* Controller
    const store = yield* InstanceStore
    return handlers
      .handle("healthz", () => Effect.succeed({ ok: true as const }))
      .handle("counts", () => store.counts(controller.spec.name).pipe(Effect.mapError(unavailable)))
  }))

export const PoolLive = (environment: "staging" | "dev" | "production") =>
  HttpApiBuilder.group(PoolApi, "pool", (handlers) =>
    Effect.gen(function*() {
      const controller = yield* Controller
      const store = yield* InstanceStore
      const pool = controller.spec.name
      return handlers
        .handle("status", () =>
          Effect.all([store.counts(pool), store.list(pool)]).pipe(
            Effect.map(([counts, rows]) => ({ counts, instances: rows.map(toPublic) })),
            Effect.mapError(unavailable)
          ))
        .handle("claim", ({ payload }) =>
          Effect.gen(function*() {
            const problem = joinUrlProblem(environment, payload.joinUrl)
            if (problem !== undefined) return yield* new BadRequest({ message: problem })
            const result = yield* controller.claim(payload).pipe(
              Effect.catchTags({
                NoIdleInstanceError: (e) => new Unavailable({ message: e.message }),
                ClaimFailedError: (e) => new BadGateway({ message: e.message }),
                ProvisionRejectedError: (e) => new BadRequest({ message: `the instance refused the request: ${e.message}` }),
                StoreError: unavailable
              })
            )
            return {
              inviteUrl: result.inviteUrl,
              conversationId: result.conversationId,
              instanceId: result.instance.id,
              joined: result.joined,
              gatewayToken: result.instance.gatewayToken,
              gatewayUrl: result.instance.url
            }
          }))
        .handle("replenish", ({ payload }) =>
          controller.replenish(payload?.count ?? 0).pipe(Effect.map(toSummary)))
        .handle("drain", ({ payload }) =>
          controller.drain(payload.count).pipe(Effect.map((drained) => ({ drained })), Effect.mapError(unavailable)))
        .handle("reconcile", () => controller.runPass.pipe(Effect.map(toSummary)))
        .handle("plan", () =>
          controller.preview.pipe(Effect.map((actions) => ({ actions: actions.map(describeAction) })), Effect.mapError(unavailable)))
        .handle("kill", ({ path }) =>
          controller.kill(path.id).pipe(
            Effect.map(toPublic),
            Effect.catchTags({
              NotFoundError: () => new NotFound({ message: `no instance ${path.id}` }),
              StaleStatusError: () => new Conflict({ message: `instance ${path.id} is already being deleted` }),
              StoreError: unavailable
            })
          ))
        .handle("dismiss", ({ path }) =>
          controller.dismiss(path.id).pipe(
            Effect.map(toPublic),
            Effect.catchTags({
              NotFoundError: () => new NotFound({ message: `no instance ${path.id}` }),
              StaleStatusError: () => new Conflict({ message: `instance ${path.id} is not crashed` }),
              StoreError: unavailable
            })
          ))
    }))

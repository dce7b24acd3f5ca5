/**
 * A pool of warm code sandboxes (src/sandbox.ts), not agents: each a local process with a JavaScript context
 * loaded before anyone asks. A claim names an owner and a session length and answers where to run code and
 * the session's token; the claimed row records the owner and the expiry. The pool backfills every claim.
 */
import { FetchHttpClient, HttpBody, HttpClient, HttpClientResponse } from "@effect/platform"
import { LocalCompute, nodeProgram } from "@warmpool/providers-local"
import {
  AlreadyBoundError, Controller, type ControllerService, HealthProbe, LocalIncarnations, NoCredentials, PoolSpec,
  ProvisionUnknownError, type Runtime, SingleLeader
} from "@warmpool/reconciler"
import { InMemoryStore } from "@warmpool/reconciler/testing"
import { Context, Effect, Layer, type Redacted, Schema } from "effect"

/** What a claim asks for: the schema refuses anything else before an instance is taken. */
export const SandboxRequest = Schema.Struct({
  owner: Schema.String.pipe(Schema.pattern(/^[a-z0-9][a-z0-9._-]{0,63}$/)),
  ttlSeconds: Schema.Int.pipe(Schema.between(60, 86_400))
})
export type SandboxRequest = typeof SandboxRequest.Type

/** What a claim answers: `POST` code to `endpoint` with `Authorization: Bearer <token>`. */
export interface SandboxSession {
  readonly endpoint: string
  readonly token: Redacted.Redacted<string>
  readonly expiresAt: Date
}

const Opened = Schema.Struct({ token: Schema.Redacted(Schema.String), expiresAt: Schema.Date })

const runtime = Effect.map(HttpClient.HttpClient, (client): Runtime<SandboxRequest, SandboxSession> => ({
  request: SandboxRequest,
  provision: (instance, request) =>
    Effect.gen(function*() {
      const unknown = (message: string) => new ProvisionUnknownError({ instanceId: instance.id, message })
      const response = yield* client.post(`${instance.url}/pool/provision`, { body: HttpBody.unsafeJson(request) }).pipe(
        Effect.mapError((error) => unknown(error.message))
      )
      if (response.status === 409) return yield* new AlreadyBoundError({ instanceId: instance.id, message: "sandbox already claimed" })
      if (response.status !== 200) return yield* unknown(`HTTP ${response.status}`)
      const opened = yield* HttpClientResponse.schemaBodyJson(Opened)(response).pipe(Effect.mapError(() => unknown("unexpected answer")))
      return { endpoint: `${instance.url}/run`, ...opened }
    }),
  // The token is the owner's alone: the row keeps who holds the sandbox and until when.
  attributes: (request, session) => ({ owner: request.owner, expiresAt: session.expiresAt.toISOString() })
}))

const health = Effect.map(HttpClient.HttpClient, (client) =>
  HealthProbe.of({
    check: ({ url }) =>
      client.get(`${url}/pool/health`).pipe(
        Effect.flatMap(HttpClientResponse.schemaBodyJson(Schema.Struct({ ready: Schema.Boolean }))),
        Effect.map(({ ready }) => (ready ? "ready" as const : "not-ready" as const)),
        Effect.timeout("2 seconds"),
        Effect.orElseSucceed(() => "unreachable" as const)
      )
  }))

export const spec = new PoolSpec({ name: "sandboxes", namePrefix: "sandbox-", minIdle: 2, maxTotal: 6, template: { image: "sandbox:js", env: {} } })

/** The pool's controller, its claims typed by the sandbox runtime. */
export class SandboxPool extends Context.Tag("SandboxPool")<SandboxPool, ControllerService<SandboxRequest, SandboxSession>>() {}

/** The pool, on this machine: sandboxes as child processes (stopped when the layer closes), rows in memory. */
export const SandboxPoolLive = (options: { readonly dataDir: string; readonly warmUpMs?: number }) =>
  Layer.scoped(SandboxPool, Effect.flatMap(runtime, (sandboxes) => Controller.makeFor(spec, sandboxes, { readinessInterval: "200 millis" }))).pipe(
    Layer.provideMerge(Layer.mergeAll(
      LocalCompute.layer({
        dataDir: options.dataDir,
        program: nodeProgram(new URL(`./sandbox${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`, import.meta.url)),
        startupDelayMs: options.warmUpMs ?? 1000
      }),
      InMemoryStore.layer,
      NoCredentials,
      SingleLeader,
      LocalIncarnations.layer(),
      Layer.effect(HealthProbe, health)
    )),
    Layer.provide(FetchHttpClient.layer)
  )


import { Chunk, Context, Effect, HashMap, Layer, Option, Ref, Schema } from "effect"
import type { Instance, StringMap } from "../domain/instance.js"
import { AlreadyBoundError, ProvisionRejectedError, ProvisionUnknownError } from "../errors.js"
import { type ClaimedStatus, InstanceRuntime, type Runtime } from "../services.js"

/** How an instance answers its claim-time call. */
export type RuntimeBehaviour =
  | "ok" // binds (and answers 409 to any later provision)
  | "bound" // already bound: 409
  | "rejected" // 400: the request was refused, the instance untouched
  | "unknown" // 5xx or timeout: nobody knows whether it bound
  | "hang" // never answers (the caller's timeout decides)

export class InMemoryRuntimeControl extends Context.Tag("@warmpool/reconciler/testing/InMemoryRuntimeControl")<
  InMemoryRuntimeControl,
  {
    readonly set: (instanceId: string, behaviour: RuntimeBehaviour) => Effect.Effect<void>
    readonly setDefault: (behaviour: RuntimeBehaviour) => Effect.Effect<void>
    /** Instance ids provisioned successfully, in order. */
    readonly provisioned: Effect.Effect<ReadonlyArray<string>>
  }
>() {}

/** What an in-memory runtime takes and answers: its request schema, the answer of an instance that binds. */
export interface InMemoryRuntimeOptions<Request, Result> {
  readonly request: Schema.Schema<Request, any>
  readonly answer: (instance: Instance, request: Request) => Result
  readonly attributes?: (request: Request, result: Result) => StringMap
  readonly boundAs?: (result: Result) => ClaimedStatus
}

/** The default in-memory runtime's claim: an optional label. */
export const SessionClaim = Schema.Struct({ label: Schema.optional(Schema.String) })
/** The default in-memory runtime's answer: the session the instance opened. */
export interface Session {
  readonly session: string
  readonly label: string | null
}

const sessions: InMemoryRuntimeOptions<typeof SessionClaim.Type, Session> = {
  request: SessionClaim,
  answer: (instance, request) => ({ session: `session-${instance.id}`, label: request.label ?? null }),
  attributes: (_, result) => (result.label === null ? { session: result.session } : { session: result.session, label: result.label })
}

/**
 * A runtime in memory: its instances answer as `InMemoryRuntimeControl` says (bind, 409, 400, 5xx, hang).
 * `layer` is a generic session pool; `make` gives one with the request and answer of another runtime.
 */
export const InMemoryRuntime = {
  layer: (fallback: RuntimeBehaviour = "ok") => InMemoryRuntime.make(sessions, fallback),
  make: <Request, Result>(options: InMemoryRuntimeOptions<Request, Result>, fallback: RuntimeBehaviour = "ok") =>
    Layer.effectContext(
      Effect.gen(function*() {
        // Persistent collections: a claim costs O(log n), not a copy of every instance so far.
        const behaviours = yield* Ref.make(HashMap.empty<string, RuntimeBehaviour>())
        const byDefault = yield* Ref.make(fallback)
        const provisioned = yield* Ref.make(Chunk.empty<string>())
        const runtime: Runtime<Request, Result> = {
          request: options.request,
          ...(options.attributes === undefined ? {} : { attributes: options.attributes }),
          ...(options.boundAs === undefined ? {} : { boundAs: options.boundAs }),
          provision: (instance, request) =>
            Effect.gen(function*() {
              const instanceId = instance.id
              const set = HashMap.get(yield* Ref.get(behaviours), instanceId)
              const behaviour = Option.isSome(set) ? set.value : yield* Ref.get(byDefault)
              switch (behaviour) {
                case "bound":
                  return yield* new AlreadyBoundError({ instanceId, message: "instance is already bound" })
                case "rejected":
                  return yield* new ProvisionRejectedError({ instanceId, status: 400, message: "request refused" })
                case "unknown":
                  return yield* new ProvisionUnknownError({ instanceId, message: "502 from the instance" })
                case "hang":
                  return yield* Effect.never
                case "ok": {
                  yield* Ref.update(behaviours, HashMap.set(instanceId, "bound" as RuntimeBehaviour))
                  yield* Ref.update(provisioned, Chunk.append(instanceId))
                  return options.answer(instance, request)
                }
              }
            })
        }
        const control: Context.Tag.Service<InMemoryRuntimeControl> = {
          set: (id, behaviour) => Ref.update(behaviours, HashMap.set(id, behaviour)),
          setDefault: (behaviour) => Ref.set(byDefault, behaviour),
          provisioned: Effect.map(Ref.get(provisioned), Chunk.toReadonlyArray)
        }
        return Context.make(InstanceRuntime, runtime).pipe(Context.add(InMemoryRuntimeControl, control))
      })
    )
}

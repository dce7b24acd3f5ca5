import { Chunk, Context, Effect, HashMap, Layer, Option, Ref } from "effect"
import { AlreadyBoundError, ProvisionRejectedError, ProvisionUnknownError } from "../errors.js"
import { InstanceRuntime } from "../services.js"

/** How an instance answers `POST /pool/provision`. */
export type RuntimeBehaviour =
  | "ok" // binds a conversation (and answers 409 to any later provision)
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

/** The Convos runtime's claim-time call, in memory. */
export const InMemoryRuntime = {
  layer: (fallback: RuntimeBehaviour = "ok") =>
    Layer.effectContext(
      Effect.gen(function*() {
        // Persistent collections: a claim costs O(log n), not a copy of every instance so far.
        const behaviours = yield* Ref.make(HashMap.empty<string, RuntimeBehaviour>())
        const byDefault = yield* Ref.make(fallback)
        const provisioned = yield* Ref.make(Chunk.empty<string>())
        const runtime: Context.Tag.Service<InstanceRuntime> = {
          provision: (instance, request) =>
            Effect.gen(function*() {
              const instanceId = instance.id
              const set = HashMap.get(yield* Ref.get(behaviours), instanceId)
              const behaviour = Option.isSome(set) ? set.value : yield* Ref.get(byDefault)
              switch (behaviour) {
                case "bound":
                  return yield* new AlreadyBoundError({ instanceId, message: "instance is already bound to a conversation" })
                case "rejected":
                  return yield* new ProvisionRejectedError({ instanceId, status: 400, message: "invalid joinUrl" })
                case "unknown":
                  return yield* new ProvisionUnknownError({ instanceId, message: "502 from the instance" })
                case "hang":
                  return yield* Effect.never
                case "ok": {
                  yield* Ref.update(behaviours, HashMap.set(instanceId, "bound" as RuntimeBehaviour))
                  yield* Ref.update(provisioned, Chunk.append(instanceId))
                  return {
                    conversationId: `conv-${instanceId}`,
                    inviteUrl: request.joinUrl ?? `https://convos.test/v2?i=${instanceId}`,
                    joined: request.joinUrl !== undefined
                  }
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

import { Context, Effect, Layer, Ref } from "effect"
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
        const behaviours = yield* Ref.make(new Map<string, RuntimeBehaviour>())
        const byDefault = yield* Ref.make(fallback)
        const provisioned = yield* Ref.make<ReadonlyArray<string>>([])
        const runtime: Context.Tag.Service<InstanceRuntime> = {
          provision: (instance, request) =>
            Effect.gen(function*() {
              const behaviour = (yield* Ref.get(behaviours)).get(instance.id) ?? (yield* Ref.get(byDefault))
              const instanceId = instance.id
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
                  yield* Ref.update(behaviours, (m) => new Map(m).set(instanceId, "bound"))
                  yield* Ref.update(provisioned, (ids) => [...ids, instanceId])
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
          set: (id, behaviour) => Ref.update(behaviours, (m) => new Map(m).set(id, behaviour)),
          setDefault: (behaviour) => Ref.set(byDefault, behaviour),
          provisioned: Ref.get(provisioned)
        }
        return Context.make(InstanceRuntime, runtime).pipe(Context.add(InMemoryRuntimeControl, control))
      })
    )
}

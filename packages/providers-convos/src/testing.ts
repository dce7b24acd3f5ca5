/** The Convos runtime in memory, for tests of what is built on it (the server's, yours). */
import type { IncarnationRegistry } from "@warmpool/reconciler"
import { type InMemoryComputeOptions, InMemoryRuntime, inMemoryServices, type RuntimeBehaviour } from "@warmpool/reconciler/testing"
import { ConvosClaim, convosAttributes } from "./claim.js"

/** Instances that answer a claim as the Convos runtime does: a conversation, joined when a `joinUrl` is given. */
export const InMemoryConvosRuntime = {
  layer: (fallback: RuntimeBehaviour = "ok") =>
    InMemoryRuntime.make({
      request: ConvosClaim,
      answer: (instance, request) => ({
        conversationId: `conv-${instance.id}`,
        inviteUrl: request.joinUrl ?? `https://convos.test/v2?i=${instance.id}`,
        joined: request.joinUrl !== undefined
      }),
      attributes: convosAttributes
    }, fallback)
}

/** `inMemoryServices` with Convos instances. */
export const inMemoryConvosServices = (compute?: InMemoryComputeOptions, registry?: IncarnationRegistry) =>
  inMemoryServices(compute, registry, InMemoryConvosRuntime.layer())

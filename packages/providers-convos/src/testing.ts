/** The Convos runtime in memory, for tests of what is built on it (the server's, yours). */
import type { IncarnationRegistry } from "@warmpool/reconciler"
import { type InMemoryComputeOptions, InMemoryRuntime, inMemoryServices, type RuntimeBehaviour } from "@warmpool/reconciler/testing"
import { AWAITS_ACCEPTANCE_MARKER, ConvosClaim, convosAttributes, convosBoundAs, type ConvosProvisioned } from "./claim.js"

/**
 * Instances that answer a claim as the Convos runtime does: a conversation, joined when a `joinUrl` is given; a
 * join whose URL holds `AWAITS_ACCEPTANCE_MARKER` awaits acceptance (no conversation yet).
 */
export const InMemoryConvosRuntime = {
  layer: (fallback: RuntimeBehaviour = "ok") =>
    InMemoryRuntime.make<ConvosClaim, ConvosProvisioned>({
      request: ConvosClaim,
      answer: (instance, request) =>
        request.joinUrl?.includes(AWAITS_ACCEPTANCE_MARKER)
          ? { conversationId: null, inviteUrl: request.joinUrl, joined: false, status: "pending_acceptance" }
          : {
            conversationId: `conv-${instance.id}`,
            inviteUrl: request.joinUrl ?? `https://convos.test/v2?i=${instance.id}`,
            joined: request.joinUrl !== undefined,
            status: null
          },
      attributes: convosAttributes,
      boundAs: convosBoundAs
    }, fallback)
}

/** `inMemoryServices` with Convos instances. */
export const inMemoryConvosServices = (compute?: InMemoryComputeOptions, registry?: IncarnationRegistry) =>
  inMemoryServices(compute, registry, InMemoryConvosRuntime.layer())

/**
 * A Convos claim in the runtime's own terms (DESIGN §4): what `POST /pool/provision` takes and answers, and what
 * a claimed row keeps of it (the seed's `agent_name`, `instructions`, `conversation_id`, `invite_url`).
 */
import type { StringMap } from "@warmpool/reconciler"
import { Schema } from "effect"

/** A claim, as the seed's `POST /api/pool/claim` takes it. Every field is optional: the runtime picks its own. */
export const ConvosClaim = Schema.Struct({
  agentName: Schema.optional(Schema.String),
  instructions: Schema.optional(Schema.String),
  /** A conversation to join instead of creating one. */
  joinUrl: Schema.optional(Schema.String)
})
export type ConvosClaim = typeof ConvosClaim.Type

/** The instance's answer to `POST /pool/provision`. */
export const ConvosProvisioned = Schema.Struct({
  inviteUrl: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  conversationId: Schema.String,
  joined: Schema.optionalWith(Schema.Boolean, { default: () => false })
})
export type ConvosProvisioned = typeof ConvosProvisioned.Type

/** What a claimed row keeps (its `attributes`); absent fields stay absent (the seed stored NULL). */
export const convosAttributes = (request: ConvosClaim, result: ConvosProvisioned): StringMap => {
  const kept: Record<string, string> = { conversationId: result.conversationId }
  if (request.agentName !== undefined) kept.agentName = request.agentName
  if (request.instructions !== undefined) kept.instructions = request.instructions
  if (result.inviteUrl !== null) kept.inviteUrl = result.inviteUrl
  return kept
}

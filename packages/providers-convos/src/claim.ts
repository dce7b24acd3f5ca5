/**
 * A Convos claim in the runtime's own terms (DESIGN §4): what `POST /pool/provision` takes and answers, and what
 * a claimed row keeps of it (the seed's `agent_name`, `instructions`, `conversation_id`, `invite_url`, and the
 * replaced system's later `profile_image`, `metadata`, `source`).
 */
import type { ClaimedStatus, StringMap } from "@warmpool/reconciler"
import { Schema } from "effect"

/** A claim, as the replaced system's `POST /api/pool/claim` takes it. Every field is optional: the runtime picks its own. */
export const ConvosClaim = Schema.Struct({
  agentName: Schema.optional(Schema.String),
  instructions: Schema.optional(Schema.String),
  /** A conversation to join instead of creating one. */
  joinUrl: Schema.optional(Schema.String),
  /** The agent's picture in the conversation (a URL). */
  profileImage: Schema.optional(Schema.String),
  /** The caller's own labels, kept with the instance and handed to the runtime. */
  metadata: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  /** Who asked (the replaced system's `source`: "api" unless the caller says otherwise). */
  source: Schema.optional(Schema.String)
})
export type ConvosClaim = typeof ConvosClaim.Type

/**
 * The instance's answer to `POST /pool/provision`. A join that waits for the conversation's acceptance answers
 * `status: "pending_acceptance"` and no conversation yet.
 */
export const ConvosProvisioned = Schema.Struct({
  inviteUrl: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  conversationId: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  joined: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  status: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null })
}).pipe(
  Schema.filter((answer) =>
    answer.conversationId !== null || answer.status === PENDING_ACCEPTANCE || "a conversationId, unless the join awaits acceptance"
  )
)
export type ConvosProvisioned = typeof ConvosProvisioned.Type

export const PENDING_ACCEPTANCE = "pending_acceptance"

/** Whether the instance is bound now or awaits the conversation's acceptance. */
export const convosBoundAs = (result: ConvosProvisioned): ClaimedStatus => (result.status === PENDING_ACCEPTANCE ? "pending_acceptance" : "claimed")

/**
 * What a claimed row keeps (its `attributes`); absent fields stay absent (the seed stored NULL). A join keeps its
 * join URL as the conversation's invite: one conversation, one instance, whatever the runtime answered.
 */
export const convosAttributes = (request: ConvosClaim, result: ConvosProvisioned): StringMap => {
  const kept: Record<string, string> = {}
  if (result.conversationId !== null) kept.conversationId = result.conversationId
  if (request.agentName !== undefined) kept.agentName = request.agentName
  if (request.instructions !== undefined) kept.instructions = request.instructions
  const inviteUrl = request.joinUrl ?? result.inviteUrl
  if (inviteUrl !== null) kept.inviteUrl = inviteUrl
  if (request.profileImage !== undefined) kept.profileImage = request.profileImage
  if (request.metadata !== undefined) kept.metadata = JSON.stringify(request.metadata)
  if (request.source !== undefined) kept.source = request.source
  return kept
}

/** What `POST /pool/provision` is sent: the claim's fields, those it lacks left out. */
export const provisionBody = (request: ConvosClaim) => ({
  agentName: request.agentName,
  instructions: request.instructions,
  ...(request.joinUrl ? { joinUrl: request.joinUrl } : {}),
  ...(request.profileImage !== undefined ? { profileImage: request.profileImage } : {}),
  ...(request.metadata !== undefined ? { metadata: request.metadata } : {}),
  ...(request.source !== undefined ? { source: request.source } : {})
})

/**
 * The reference and in-memory runtimes answer a join whose URL holds this that it awaits acceptance, as a Convos
 * runtime does when the conversation must first approve the agent: what tests and demos use to reach that path.
 */
export const AWAITS_ACCEPTANCE_MARKER = "awaits-acceptance"

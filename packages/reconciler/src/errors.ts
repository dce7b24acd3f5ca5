import { Duration, Option, Predicate, Schema } from "effect"

/**
 * Errors of the external services (compute platform, credential APIs, instance runtime, store).
 * Each says whether retrying the same call later can succeed. Messages never contain secrets:
 * providers build them from status codes and the remote error text, not from request headers.
 */
const common = {
  /** What was being done, e.g. "railway.serviceCreate". */
  operation: Schema.String,
  message: Schema.String
}

/** The remote side asked us to slow down. `retryAfter` is its hint when it gave one. */
export class RateLimitedError extends Schema.TaggedError<RateLimitedError>()("RateLimitedError", {
  ...common,
  retryAfter: Schema.OptionFromSelf(Schema.DurationFromSelf)
}) {
  get retryable() {
    return true
  }
}

/**
 * Network failure, timeout, 5xx, a non-JSON answer: may work next time. `noAnswer`: the request went out and
 * nothing came back in time (a hung API), so its outcome is unknown and another try now would wait as long again.
 */
export class TransientError extends Schema.TaggedError<TransientError>()("TransientError", {
  ...common,
  noAnswer: Schema.optional(Schema.Boolean)
}) {
  get retryable() {
    return true
  }
}

/** The thing does not exist (destroying it counts as done). */
export class NotFoundError extends Schema.TaggedError<NotFoundError>()("NotFoundError", common) {
  get retryable() {
    return false
  }
}

/** The thing exists already or is in a state that forbids the call. */
export class ConflictError extends Schema.TaggedError<ConflictError>()("ConflictError", common) {
  get retryable() {
    return false
  }
}

/** Bad or missing credentials: retrying will not help, an operator must act. */
export class UnauthorizedError extends Schema.TaggedError<UnauthorizedError>()("UnauthorizedError", common) {
  get retryable() {
    return false
  }
}

/** The request itself is wrong. */
export class InvalidRequestError extends Schema.TaggedError<InvalidRequestError>()("InvalidRequestError", common) {
  get retryable() {
    return false
  }
}

/** Any failure of a remote service. */
export type ProviderError =
  | RateLimitedError
  | TransientError
  | NotFoundError
  | ConflictError
  | UnauthorizedError
  | InvalidRequestError

export const isProviderError = (u: unknown): u is ProviderError =>
  Predicate.isTagged(u, "RateLimitedError") ||
  Predicate.isTagged(u, "TransientError") ||
  Predicate.isTagged(u, "NotFoundError") ||
  Predicate.isTagged(u, "ConflictError") ||
  Predicate.isTagged(u, "UnauthorizedError") ||
  Predicate.isTagged(u, "InvalidRequestError")

export const isRetryable = (error: ProviderError): boolean => error.retryable

/** The `retryAfter` hint of a rate-limit error, if any. */
export const retryAfterOf = (error: ProviderError): Option.Option<Duration.Duration> =>
  error._tag === "RateLimitedError" ? error.retryAfter : Option.none()

/** The database failed. Retryable unless the statement itself was refused. */
export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  ...common,
  retryable: Schema.Boolean
}) {}

/** The instance's runtime says it is already bound to an earlier claim (HTTP 409). It must not go back to idle. */
export class AlreadyBoundError extends Schema.TaggedError<AlreadyBoundError>()("AlreadyBoundError", {
  instanceId: Schema.String,
  message: Schema.String
}) {}

/** The runtime refused the request itself (4xx other than 409): the instance is untouched. */
export class ProvisionRejectedError extends Schema.TaggedError<ProvisionRejectedError>()("ProvisionRejectedError", {
  instanceId: Schema.String,
  status: Schema.Number,
  message: Schema.String
}) {}

/** Timeout, 5xx, or no answer: whether the instance got bound is unknown. It must not go back to idle. */
export class ProvisionUnknownError extends Schema.TaggedError<ProvisionUnknownError>()("ProvisionUnknownError", {
  instanceId: Schema.String,
  message: Schema.String
}) {}

export type ProvisionError = AlreadyBoundError | ProvisionRejectedError | ProvisionUnknownError

/** A claim's request is not what the pool's runtime takes: nothing was taken, and the same request will fail again. */
export class InvalidClaimError extends Schema.TaggedError<InvalidClaimError>()("InvalidClaimError", {
  pool: Schema.String,
  message: Schema.String
}) {
  get retryable() {
    return false
  }
}

/** No idle instance to claim right now. */
export class NoIdleInstanceError extends Schema.TaggedError<NoIdleInstanceError>()("NoIdleInstanceError", {
  pool: Schema.String,
  message: Schema.String
}) {}

/** Every claim attempt failed to provision; the instances tried were marked crashed. */
export class ClaimFailedError extends Schema.TaggedError<ClaimFailedError>()("ClaimFailedError", {
  attempts: Schema.Number,
  message: Schema.String
}) {}

/** A compare-and-set found the row in another status (or gone): somebody else acted first. */
export class StaleStatusError extends Schema.TaggedError<StaleStatusError>()("StaleStatusError", {
  id: Schema.String,
  expected: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/** This replica lost (or never held) the leadership while acting. */
export class NotLeaderError extends Schema.TaggedError<NotLeaderError>()("NotLeaderError", {
  message: Schema.String
}) {}

/** A request named a pool this manager does not keep. */
export class UnknownPoolError extends Schema.TaggedError<UnknownPoolError>()("UnknownPoolError", {
  pool: Schema.String,
  known: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/** An operator protects this instance (PROTECTED_INSTANCES): it is never claimed, killed, drained, rolled out or deleted. */
export class ProtectedInstanceError extends Schema.TaggedError<ProtectedInstanceError>()("ProtectedInstanceError", {
  id: Schema.String,
  message: Schema.String
}) {
  get retryable() {
    return false
  }
}

/** A live change of a pool's spec that would make it another pool (its name or service prefix). */
export class SpecChangeError extends Schema.TaggedError<SpecChangeError>()("SpecChangeError", {
  pool: Schema.String,
  message: Schema.String
}) {
  get retryable() {
    return false
  }
}

/**
 * The API server's answers as the reconciler's tagged errors. Messages come from the status code and the
 * server's own `Status` message, never from the request (a Secret's data never reaches an error or a log).
 */
import { ApiException } from "@kubernetes/client-node"
import { errorFromHttpStatus, InvalidRequestError, type ProviderError, TransientError } from "@warmpool/reconciler"

/** The `Status` object Kubernetes answers errors with (what the provider reads of it). */
export interface KubeStatus {
  readonly code?: number
  readonly reason?: string
  readonly message?: string
}

const statusBody = (body: unknown): KubeStatus => {
  if (typeof body === "string") {
    try {
      return statusBody(JSON.parse(body))
    } catch {
      return { message: body.slice(0, 300) }
    }
  }
  return typeof body === "object" && body !== null ? body as KubeStatus : {}
}

/** A failed call: its HTTP status (0 when there was no answer), the server's message and reason, Retry-After. */
export interface CallFailure {
  readonly status: number
  readonly reason: string
  readonly message: string
  readonly retryAfter: string | null
}

export const failureOf = (cause: unknown): CallFailure => {
  if (cause instanceof ApiException) {
    const body = statusBody(cause.body)
    return { status: cause.code, reason: body.reason ?? "", message: body.message ?? "", retryAfter: cause.headers?.["retry-after"] ?? null }
  }
  // No answer: refused connection, reset, DNS. The client's own message names the address, not the request.
  const message = cause instanceof Error ? cause.message : String(cause)
  return { status: 0, reason: "", message: message.split("\n")[0]!.slice(0, 300), retryAfter: null }
}

/**
 * A refusal by the cluster's policy rather than by the caller's rights: a ResourceQuota, a LimitRange, Pod
 * Security, an admission webhook (403 Forbidden that is not RBAC's "cannot"), or an invalid object (422). Retrying
 * the same create will be refused again until something changes.
 */
export type Refusal = "quota" | "admission" | "invalid"

export const refusalOf = (failure: CallFailure): Refusal | undefined => {
  if (failure.status === 422) return "invalid"
  if (failure.status !== 403) return undefined
  if (/exceeded quota|must specify limits|must specify requests/i.test(failure.message)) return "quota"
  // RBAC says `User "x" cannot create resource "pods"`: that is an operator's fix, reported as unauthorized.
  if (/\bcannot\s+\w+\s+resource\b/i.test(failure.message)) return undefined
  return "admission"
}

const refusalWords: Record<Refusal, string> = {
  quota: "refused by a ResourceQuota",
  admission: "refused by admission",
  invalid: "refused as invalid"
}

/** The tagged error of a failed call of `operation` (e.g. `kubernetes.createPod`). */
export const toProviderError = (operation: string, cause: unknown): ProviderError => {
  if (cause !== null && typeof cause === "object" && "_tag" in cause) return cause as ProviderError
  const failure = failureOf(cause)
  if (failure.status === 0) return new TransientError({ operation, message: `no answer from the API server: ${failure.message}` })
  const refusal = refusalOf(failure)
  if (refusal !== undefined) {
    return new InvalidRequestError({ operation, message: `HTTP ${failure.status} ${refusalWords[refusal]}: ${failure.message}` })
  }
  return errorFromHttpStatus(operation, failure.status, failure.message, failure.retryAfter)
}

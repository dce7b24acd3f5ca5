/**
 * What every provider of a remote API shares: mapping an HTTP answer to a tagged error, and the retry
 * policy (exponential, jittered, bounded, honouring Retry-After). Pure: no HTTP client in here.
 */
import { Duration, Effect, Option, Schedule } from "effect"
import {
  ConflictError,
  InvalidRequestError,
  NotFoundError,
  type ProviderError,
  RateLimitedError,
  retryAfterOf,
  TransientError,
  UnauthorizedError
} from "./errors.js"

/** `Retry-After`: seconds, or an HTTP date. */
export const parseRetryAfter = (header: string | null | undefined, now = Date.now()): Option.Option<Duration.Duration> => {
  if (header === null || header === undefined || header.trim() === "") return Option.none()
  const seconds = Number(header)
  if (Number.isFinite(seconds) && seconds >= 0) return Option.some(Duration.seconds(seconds))
  const date = Date.parse(header)
  return Number.isNaN(date) ? Option.none() : Option.some(Duration.millis(Math.max(0, date - now)))
}

/** The error an HTTP status stands for. `message` is the remote's own error text (never our headers). */
export const errorFromHttpStatus = (
  operation: string,
  status: number,
  message: string,
  retryAfter?: string | null
): ProviderError => {
  const text = `HTTP ${status}${message === "" ? "" : `: ${message}`}`
  if (status === 429) return new RateLimitedError({ operation, message: text, retryAfter: parseRetryAfter(retryAfter) })
  if (status === 401 || status === 403) return new UnauthorizedError({ operation, message: text })
  if (status === 404) return new NotFoundError({ operation, message: text })
  if (status === 409) return new ConflictError({ operation, message: text })
  if (status >= 400 && status < 500 && status !== 408) return new InvalidRequestError({ operation, message: text })
  return new TransientError({ operation, message: text })
}

export interface RetryOptions {
  /** Retries after the first try. Default 4. */
  readonly times?: number
  /** First backoff. Default 200 ms, doubling. */
  readonly base?: Duration.DurationInput
  /** Longest wait between tries, Retry-After included. Default 30 s. */
  readonly cap?: Duration.DurationInput
}

/** Retries rate-limited and transient failures, never the others; waits at least what Retry-After asks. */
export const retryRemote = (options: RetryOptions = {}) => {
  const cap = Duration.decode(options.cap ?? Duration.seconds(30))
  const schedule = Schedule.exponential(options.base ?? Duration.millis(200)).pipe(
    Schedule.jittered,
    Schedule.intersect(Schedule.recurs(options.times ?? 4)),
    Schedule.intersect(Schedule.identity<ProviderError>()),
    // A hung call is not tried again within the same call: it already waited its whole timeout (the next pass retries).
    Schedule.whileInput((error: ProviderError) => error.retryable && !(error._tag === "TransientError" && error.noAnswer === true)),
    Schedule.modifyDelay(([, error], delay) =>
      Duration.min(cap, Duration.max(delay, Option.getOrElse(retryAfterOf(error), () => Duration.zero))))
  )
  return <A, R>(effect: Effect.Effect<A, ProviderError, R>) => Effect.retry(effect, schedule)
}

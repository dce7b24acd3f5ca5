/**
 * The GraphQL transport to Railway: auth by token kind, one client-side rate limiter shared by every call
 * (per second and per hour), a pause for everyone after a 429 (Retry-After), every failure a tagged error
 * (an HTML page from the CDN included), bounded retries, and an unauthorized token reported once and then
 * not sent again for a while.
 */
import {
  errorFromHttpStatus,
  InvalidRequestError,
  NotFoundError,
  ConflictError,
  type ProviderError,
  RateLimitedError,
  retryRemote,
  TransientError,
  UnauthorizedError
} from "@warmpool/reconciler"
import { Clock, Duration, Effect, Option, RateLimiter, Redacted, Ref, type Scope } from "effect"
import { ClientError, GraphQLClient } from "graphql-request"
import type { TokenKind } from "./config.js"
import { type LimitedCreation, makeTokenPool } from "./tokens.js"
import { makeUsageTracker, type RailwayUsage } from "./usage.js"

export interface RailwayClientOptions {
  readonly apiUrl: string
  readonly token: Redacted.Redacted<string>
  /** Every token (RAILWAY_API_TOKENS); `token` alone when absent. Limited creations are spread over them. */
  readonly tokens?: ReadonlyArray<Redacted.Redacted<string>>
  /** How long a token rests after creating a project (or a volume) before it creates another. Default 30 s. */
  readonly tokenCooldown?: Duration.DurationInput
  readonly ratePerSecond: number
  readonly ratePerHour: number
  readonly timeout: Duration.Duration
  /** After an Unauthorized answer, calls fail at once for this long instead of reaching Railway. */
  readonly unauthorizedCooldown?: Duration.DurationInput
}

export interface RequestOptions {
  /** Retry retryable failures (default). Off for calls whose retry is not idempotent (serviceCreate). */
  readonly retry?: boolean
  /** A question whose "no" is an answer (which kind of token is this?): no retries, no unauthorized hold. */
  readonly probe?: boolean
  /**
   * A creation Railway limits per token (projectCreate, volumeCreate): sent on a token free for it, waiting in
   * line while all cool; a 429 cools that token only (nobody else pauses), and is not retried on the same token.
   */
  readonly creation?: LimitedCreation
  /** With `creation`: only on a token free right now; otherwise nothing is sent and it fails at once, rate limited. */
  readonly whenFree?: boolean
}

export interface RailwayAnswer<A> {
  readonly data: A
  /** Railway's X-RateLimit-* headers of this answer. */
  readonly rateLimit: Readonly<Record<string, string>>
}

/** A GraphQL error's text → the tagged error it stands for. */
export const errorFromGraphQL = (operation: string, message: string): ProviderError => {
  const text = message.slice(0, 300)
  if (/not authori[sz]ed|unauthori[sz]ed|invalid token|forbidden/i.test(message)) return new UnauthorizedError({ operation, message: text })
  if (/not found|does not exist/i.test(message)) return new NotFoundError({ operation, message: text })
  if (/already exists|duplicate/i.test(message)) return new ConflictError({ operation, message: text })
  if (/rate limit|too many requests/i.test(message)) return new RateLimitedError({ operation, message: text, retryAfter: Option.none() })
  if (/invalid|must be|validation|required/i.test(message)) return new InvalidRequestError({ operation, message: text })
  return new TransientError({ operation, message: text })
}

const rateLimitHeaders = (headers: Headers | undefined) => {
  const found: Record<string, string> = {}
  headers?.forEach((value, key) => {
    if (key.toLowerCase().startsWith("x-ratelimit")) found[key.toLowerCase()] = value
  })
  return found
}

export const makeRailwayClient = (options: RailwayClientOptions): Effect.Effect<{
  readonly request: <A>(
    operation: string,
    document: string,
    variables: object,
    kind: TokenKind,
    requestOptions?: RequestOptions
  ) => Effect.Effect<RailwayAnswer<A>, ProviderError>
  /** What has been spent of the API budget, and how the tokens stand. */
  readonly usage: Effect.Effect<RailwayUsage>
}, never, Scope.Scope> =>
  Effect.gen(function*() {
    const perSecond = yield* RateLimiter.make({ limit: options.ratePerSecond, interval: Duration.seconds(1) })
    const perHour = yield* RateLimiter.make({ limit: options.ratePerHour, interval: Duration.hours(1) })
    const tracker = yield* makeUsageTracker(options.ratePerHour)
    /** Nobody calls before this instant (epoch ms): set by a 429's Retry-After. */
    const pausedUntil = yield* Ref.make(0)
    /** While set, the token is known bad: fail at once (epoch ms until which). */
    const unauthorizedUntil = yield* Ref.make<Option.Option<{ until: number; error: UnauthorizedError }>>(Option.none())
    const cooldown = Duration.toMillis(options.unauthorizedCooldown ?? Duration.minutes(1))
    const client = new GraphQLClient(options.apiUrl, { errorPolicy: "none" })
    const tokens = options.tokens !== undefined && options.tokens.length > 0 ? options.tokens : [options.token]
    const pool = yield* makeTokenPool(tokens, options.tokenCooldown ?? Duration.seconds(30))
    const secrets = tokens.map(Redacted.value)
    const scrub = (text: string) => secrets.reduce((t, secret) => t.split(secret).join("[redacted]"), text)

    const send = <A>(operation: string, document: string, variables: object, kind: TokenKind, probe: boolean, token: Redacted.Redacted<string>, index: number | null) =>
      Effect.gen(function*() {
        const blocked = yield* Ref.get(unauthorizedUntil)
        const now = yield* Clock.currentTimeMillis
        if (!probe && Option.isSome(blocked) && blocked.value.until > now) return yield* blocked.value.error
        const wait = (yield* Ref.get(pausedUntil)) - now
        if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
        const secret = Redacted.value(token)
        const headers: Record<string, string> = kind === "project" ? { "Project-Access-Token": secret } : { Authorization: `Bearer ${secret}` }
        yield* tracker.sent(operation)
        // The rate-limit headers of a refused answer, recorded like those of an accepted one.
        let refusedHeaders: Record<string, string> = {}
        const answer = yield* Effect.tryPromise({
          try: (signal) => client.rawRequest<A>({ query: document, variables: variables as Record<string, unknown>, requestHeaders: headers, signal }),
          catch: (error): ProviderError => {
            if (error instanceof ClientError) {
              refusedHeaders = rateLimitHeaders(error.response.headers)
              const { errors, status } = error.response
              const message = errors?.[0]?.message
              if (status >= 200 && status < 300 && message !== undefined) return errorFromGraphQL(operation, scrub(message))
              const contentType = error.response.headers?.get?.("content-type") ?? ""
              const detail = message ?? (contentType.includes("json") ? "" : `non-JSON answer (${contentType || "no content type"})`)
              return errorFromHttpStatus(operation, status, scrub(detail), error.response.headers?.get?.("retry-after"))
            }
            const text = error instanceof Error ? error.message : String(error)
            return new TransientError({ operation, message: scrub(`request failed: ${text}`) })
          }
        }).pipe(
          Effect.tapError((error) => tracker.answered(refusedHeaders, error._tag === "RateLimitedError")),
          Effect.timeoutFail({ duration: options.timeout, onTimeout: () => new TransientError({ operation, message: `no answer within ${Duration.format(options.timeout)}`, noAnswer: true }) })
        )
        const rateLimit = rateLimitHeaders(answer.headers)
        yield* tracker.answered(rateLimit, false)
        return { data: answer.data, rateLimit }
      }).pipe(
        Effect.tapError((error) =>
          Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            // A limited creation's 429 (index null) is that token's alone: the token pool cools it.
            if (error._tag === "RateLimitedError" && index !== null) {
              const delay = Option.getOrElse(error.retryAfter, () => Duration.seconds(1))
              yield* Ref.update(pausedUntil, (until) => Math.max(until, now + Duration.toMillis(delay)))
            }
            // Another token takes over from a refused one while there is one; only the last is held.
            const droppedIt = error._tag === "UnauthorizedError" && !probe && index !== null && (yield* pool.refused(index, error))
            if (error._tag === "UnauthorizedError" && !probe && index !== null && !droppedIt) {
              const first = Option.isNone(yield* Ref.getAndSet(unauthorizedUntil, Option.some({ until: now + cooldown, error })))
              if (first) {
                yield* Effect.logError(
                  `Railway refused the token (${error.message}). Check RAILWAY_API_TOKEN and its kind (account/workspace tokens: Bearer; project tokens: Project-Access-Token). Calls are held for ${Duration.format(Duration.millis(cooldown))} at a time.`
                )
              }
            }
          })
        )
      )

    /** An ordinary call on the current token; once more on the next one when Railway refused and dropped it. */
    const onCurrentToken = <A>(operation: string, document: string, variables: object, kind: TokenKind, probe: boolean) =>
      Effect.flatMap(pool.current, ({ index, token }) =>
        perSecond(perHour(send<A>(operation, document, variables, kind, probe, token, index))).pipe(
          Effect.catchTag("UnauthorizedError", (error) =>
            Effect.flatMap(pool.current, (next) =>
              next.index !== index && !probe ? perSecond(perHour(send<A>(operation, document, variables, kind, probe, next.token, next.index))) : Effect.fail(error)))
        ))

    return {
      request: <A>(operation: string, document: string, variables: object, kind: TokenKind, requestOptions: RequestOptions = {}) => {
        const { creation, probe = false } = requestOptions
        if (creation !== undefined) {
          const onToken = (token: Redacted.Redacted<string>) => perSecond(perHour(send<A>(operation, document, variables, kind, false, token, null)))
          const sent = requestOptions.whenFree === true
            ? pool.withFreeToken(creation, Option.match({
              onNone: () => Effect.fail(new RateLimitedError({ operation, message: `every token is cooling from a ${creation} creation`, retryAfter: Option.none() })),
              onSome: onToken
            }))
            : pool.withToken(creation, onToken)
          return sent.pipe(Effect.withSpan(`railway.${operation}`))
        }
        const once = onCurrentToken<A>(operation, document, variables, kind, probe)
        const retried = requestOptions.retry === false || probe ? once : retryRemote()(once)
        return retried.pipe(Effect.withSpan(`railway.${operation}`))
      },
      usage: Effect.zipWith(tracker.usage, pool.states, (usage, tokens) => ({ ...usage, tokens }))
    }
  })

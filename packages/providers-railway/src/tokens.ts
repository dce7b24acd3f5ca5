/**
 * The API tokens (RAILWAY_API_TOKENS, or RAILWAY_API_TOKEN alone) and which may be used when. Railway lets one
 * token create one project and one volume per 30 s: those creations take a token that is not cooling for that
 * kind, and wait in line (a queue of ready tokens per kind) when all are. A token Railway refuses (401/403) is
 * dropped, logged once by its position, never its value, and the others go on. Every other call goes out on
 * the first token still in use.
 */
import type { ProviderError, UnauthorizedError } from "@warmpool/reconciler"
import { Clock, Duration, Effect, Metric, Option, Queue, type Redacted, Ref, type Scope } from "effect"

/** The creations Railway limits per token. */
export type LimitedCreation = "project" | "volume"

/** How the tokens stand: in use and free, in use but cooling (some creation waits out its cooldown), dropped. */
export interface TokenStates {
  readonly healthy: number
  readonly cooling: number
  readonly dropped: number
}

const tokensGauge = Metric.gauge("warmpool_railway_tokens", { description: "Railway API tokens by state (healthy, cooling, dropped)" })

export interface TokenPool {
  /** How many tokens there are. */
  readonly size: number
  /** The token ordinary calls use: the first one not dropped (the last one left is never dropped). */
  readonly current: Effect.Effect<{ readonly index: number; readonly token: Redacted.Redacted<string> }>
  /**
   * Runs a limited creation on a token free for it: waits while every token cools, moves to the next token when
   * one is refused (401/403: dropped) or rate limited (429: cools for its Retry-After), and fails with the
   * refusal once no token is left.
   */
  readonly withToken: <A>(
    kind: LimitedCreation,
    use: (token: Redacted.Redacted<string>) => Effect.Effect<A, ProviderError>
  ) => Effect.Effect<A, ProviderError>
  /**
   * Runs `use` with a token free for `kind` right now (then cooled, or dropped, as after any creation), or with
   * none when every token cools or a creation waits for one: never waits, never takes a token from a waiting
   * creation. For a creation that can ride along with a request sent anyway, or wait for a quiet moment.
   */
  readonly withFreeToken: <A>(
    kind: LimitedCreation,
    use: (token: Option.Option<Redacted.Redacted<string>>) => Effect.Effect<A, ProviderError>
  ) => Effect.Effect<A, ProviderError>
  /** A token refused by Railway: dropped unless it is the last one, reported once. Returns whether it was dropped. */
  readonly refused: (index: number, error: UnauthorizedError) => Effect.Effect<boolean>
  readonly states: Effect.Effect<TokenStates>
}

export const makeTokenPool = (
  tokens: ReadonlyArray<Redacted.Redacted<string>>,
  cooldown: Duration.DurationInput
): Effect.Effect<TokenPool, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const cooldownMs = Duration.toMillis(cooldown)
    const dropped = yield* Ref.make<ReadonlySet<number>>(new Set())
    /** Per kind, until when (epoch ms) each token cools. */
    const coolingUntil = yield* Ref.make<Readonly<Record<LimitedCreation, ReadonlyArray<number>>>>({
      project: tokens.map(() => 0),
      volume: tokens.map(() => 0)
    })
    /** Per kind, the tokens ready for it, in the order they became ready. */
    const ready = {
      project: yield* Queue.unbounded<number>(),
      volume: yield* Queue.unbounded<number>()
    }
    yield* Effect.forEach([ready.project, ready.volume], (queue) => Queue.offerAll(queue, tokens.map((_, i) => i)), { discard: true })

    const states: Effect.Effect<TokenStates> = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const gone = yield* Ref.get(dropped)
      const until = yield* Ref.get(coolingUntil)
      const live = tokens.map((_, i) => i).filter((i) => !gone.has(i))
      const cooling = live.filter((i) => until.project[i]! > now || until.volume[i]! > now).length
      const result = { healthy: live.length - cooling, cooling, dropped: gone.size }
      for (const [state, count] of Object.entries(result)) yield* Metric.set(Metric.tagged(tokensGauge, "state", state), count)
      return result
    })

    const refused = (index: number, error: UnauthorizedError) =>
      Effect.gen(function*() {
        const before = yield* Ref.get(dropped)
        if (before.has(index) || before.size >= tokens.length - 1) return before.has(index)
        yield* Ref.set(dropped, new Set([...before, index]))
        const left = tokens.length - before.size - 1
        yield* Effect.logError(`Railway refused API token ${index + 1} of ${tokens.length} (${error.message}); dropped until restart, ${left} left`)
        yield* states
        return true
      })

    const current = Effect.map(Ref.get(dropped), (gone) => {
      const index = Math.max(0, tokens.findIndex((_, i) => !gone.has(i)))
      return { index, token: tokens[index]! }
    })

    /** The next token ready for `kind`, skipping dropped ones; waits while all cool. */
    const take = (kind: LimitedCreation): Effect.Effect<number> =>
      Effect.flatMap(Queue.take(ready[kind]), (index) =>
        Effect.flatMap(Ref.get(dropped), (gone) => (gone.has(index) ? take(kind) : Effect.succeed(index))))

    /** Puts a token back in line for `kind` once its cooldown has passed. */
    const cool = (kind: LimitedCreation, index: number, forMs: number) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        yield* Ref.update(coolingUntil, (u) => ({ ...u, [kind]: u[kind].map((t, i) => (i === index ? now + forMs : t)) }))
        yield* states
        yield* Queue.offer(ready[kind], index).pipe(Effect.zipRight(states), Effect.delay(Duration.millis(forMs)), Effect.forkIn(scope))
      })

    /** A token that made (or tried) a creation: it cools, for longer after a 429, and is dropped when refused. */
    const used = <A>(kind: LimitedCreation, index: number, creation: Effect.Effect<A, ProviderError>, droppedIt?: Ref.Ref<boolean>) =>
      creation.pipe(
        Effect.tapBoth({
          onSuccess: () => cool(kind, index, cooldownMs),
          onFailure: (error) =>
            error._tag === "UnauthorizedError"
              ? Effect.flatMap(refused(index, error), (wasDropped) =>
                Effect.zipRight(droppedIt === undefined ? Effect.void : Ref.set(droppedIt, wasDropped), wasDropped ? Effect.void : cool(kind, index, cooldownMs)))
              : error._tag === "RateLimitedError"
              ? cool(kind, index, Math.max(cooldownMs, Option.match(error.retryAfter, { onNone: () => 0, onSome: Duration.toMillis })))
              : cool(kind, index, cooldownMs)
        })
      )

    /** One try on one token; `dropped` says afterwards whether a refusal dropped it (so another may take over). */
    const attempt = <A>(kind: LimitedCreation, use: (token: Redacted.Redacted<string>) => Effect.Effect<A, ProviderError>, droppedIt: Ref.Ref<boolean>) =>
      Effect.flatMap(take(kind), (index) => used(kind, index, use(tokens[index]!), droppedIt))

    /** The next token ready for `kind` now, if any (dropped ones are discarded); a creation in line was served first. */
    const poll = (kind: LimitedCreation): Effect.Effect<Option.Option<number>> =>
      Effect.flatMap(Queue.poll(ready[kind]), (next) =>
        Option.match(next, {
          onNone: () => Effect.succeed(Option.none()),
          onSome: (index) => Effect.flatMap(Ref.get(dropped), (gone) => (gone.has(index) ? poll(kind) : Effect.succeed(Option.some(index))))
        }))

    const withFreeToken = <A>(kind: LimitedCreation, use: (token: Option.Option<Redacted.Redacted<string>>) => Effect.Effect<A, ProviderError>) =>
      Effect.flatMap(poll(kind), (free) =>
        Option.match(free, {
          onNone: () => use(Option.none()),
          onSome: (index) => used(kind, index, use(Option.some(tokens[index]!)))
        })).pipe(Effect.withSpan("RailwayTokens.withFreeToken", { attributes: { kind } }))

    const withToken = <A>(kind: LimitedCreation, use: (token: Redacted.Redacted<string>) => Effect.Effect<A, ProviderError>) =>
      Effect.flatMap(Ref.make(false), (droppedIt) =>
        attempt(kind, use, droppedIt).pipe(
          // Another token may take it: a 429 cools this one, a refusal drops it (unless it is the last).
          Effect.retry({
            times: tokens.length * 3,
            while: (error) => error._tag === "RateLimitedError" || (error._tag === "UnauthorizedError" && Ref.get(droppedIt))
          })
        )).pipe(Effect.withSpan("RailwayTokens.withToken", { attributes: { kind } }))

    yield* states
    return { size: tokens.length, current, withToken, withFreeToken, refused, states }
  })

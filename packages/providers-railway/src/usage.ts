/**
 * What the pool spends of Railway's API budget: requests by operation, requests in the last hour, 429s and
 * Railway's last rate-limit headers. Kept by the client (every request it sends), read by `/metrics`, the
 * dashboard, and the create batcher (which waits longer for company when the budget runs low).
 */
import { Clock, Effect, Metric, Ref } from "effect"
import type { TokenStates } from "./tokens.js"

export interface RailwayUsage {
  /** Requests sent in the last hour (every HTTP request, retries included). */
  readonly requestsLastHour: number
  /** The hourly limit: Railway's `x-ratelimit-limit` once seen, else the configured RAILWAY_RATE_PER_HOUR. */
  readonly hourlyLimit: number
  /** Railway's `x-ratelimit-remaining` of the last answer that carried it. */
  readonly remaining: number | null
  /** Requests sent since start, by operation. */
  readonly byOperation: Readonly<Record<string, number>>
  /** 429 answers since start. */
  readonly rateLimited: number
  /** The last answer's `x-ratelimit-*` headers. */
  readonly lastHeaders: Readonly<Record<string, string>>
  /** The API tokens: free, cooling after a project or volume creation, dropped after a refusal. */
  readonly tokens: TokenStates
}

const requests = Metric.counter("warmpool_railway_requests_total", { description: "Railway API requests, by operation", incremental: true })
const rateLimited = Metric.counter("warmpool_railway_rate_limited_total", { description: "Railway answers that were 429 (rate limited)", incremental: true })
const lastHour = Metric.gauge("warmpool_railway_requests_last_hour", { description: "Railway API requests sent in the last hour" })
const remainingGauge = Metric.gauge("warmpool_railway_rate_limit_remaining", { description: "x-ratelimit-remaining of Railway's last answer" })
const limitGauge = Metric.gauge("warmpool_railway_rate_limit_limit", { description: "x-ratelimit-limit of Railway's last answer" })
const resetGauge = Metric.gauge("warmpool_railway_rate_limit_reset_seconds", { description: "x-ratelimit-reset of Railway's last answer (epoch seconds)" })

const HOUR_MS = 3_600_000

/** A rate-limit header as a number, or null when it is absent or not one. */
const numericHeader = (headers: Readonly<Record<string, string>>, name: string): number | null => {
  const value = Number(headers[name])
  return headers[name] !== undefined && Number.isFinite(value) ? value : null
}

/** Below this share of the hourly limit left, the budget is tight. */
const TIGHT_SHARE = 0.25

export const isTight = (usage: RailwayUsage): boolean => {
  const left = usage.remaining ?? usage.hourlyLimit - usage.requestsLastHour
  return left < usage.hourlyLimit * TIGHT_SHARE
}

export const makeUsageTracker = (configuredHourlyLimit: number) =>
  Effect.gen(function*() {
    const state = yield* Ref.make({
      sent: [] as ReadonlyArray<number>,
      byOperation: {} as Readonly<Record<string, number>>,
      rateLimited: 0,
      lastHeaders: {} as Readonly<Record<string, string>>
    })
    const inLastHour = (sent: ReadonlyArray<number>, now: number) => {
      const since = now - HOUR_MS
      const first = sent.findIndex((t) => t > since)
      return first === -1 ? [] : first === 0 ? sent : sent.slice(first)
    }

    const sent = (operation: string) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const next = yield* Ref.updateAndGet(state, (s) => ({
          ...s,
          sent: [...inLastHour(s.sent, now), now],
          byOperation: { ...s.byOperation, [operation]: (s.byOperation[operation] ?? 0) + 1 }
        }))
        yield* Metric.increment(Metric.tagged(requests, "operation", operation))
        yield* Metric.set(lastHour, next.sent.length)
      })

    const answered = (headers: Readonly<Record<string, string>>, status429: boolean) =>
      Effect.gen(function*() {
        if (status429) {
          yield* Ref.update(state, (s) => ({ ...s, rateLimited: s.rateLimited + 1 }))
          yield* Metric.increment(rateLimited)
        }
        if (Object.keys(headers).length === 0) return
        yield* Ref.update(state, (s) => ({ ...s, lastHeaders: headers }))
        const gauges = [[remainingGauge, "x-ratelimit-remaining"], [limitGauge, "x-ratelimit-limit"], [resetGauge, "x-ratelimit-reset"]] as const
        for (const [gauge, name] of gauges) {
          const value = numericHeader(headers, name)
          if (value !== null) yield* Metric.set(gauge, value)
        }
      })

    const usage: Effect.Effect<Omit<RailwayUsage, "tokens">> = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const s = yield* Ref.get(state)
      const count = inLastHour(s.sent, now).length
      yield* Metric.set(lastHour, count)
      return {
        requestsLastHour: count,
        hourlyLimit: numericHeader(s.lastHeaders, "x-ratelimit-limit") ?? configuredHourlyLimit,
        remaining: numericHeader(s.lastHeaders, "x-ratelimit-remaining"),
        byOperation: s.byOperation,
        rateLimited: s.rateLimited,
        lastHeaders: s.lastHeaders
      }
    })

    return { sent, answered, usage }
  })

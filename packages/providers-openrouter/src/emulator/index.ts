/**
 * An OpenRouter key-management emulator on loopback: `POST/GET /api/v1/keys`, `GET/PATCH/DELETE /api/v1/keys/{hash}`,
 * with OpenRouter's shapes (see reference/openrouter/openapi.yaml), management-key auth, pages of 100,
 * and the harness's injectable faults (429 with Retry-After, HTML pages, 5xx, slow answers).
 */
import { type EmulatorRequest, type EmulatorResponse, startHttpEmulator } from "@warmpool/reconciler/testing"
import { Effect } from "effect"
import { createHash, randomBytes } from "node:crypto"

export interface EmulatedKey {
  readonly hash: string
  readonly name: string
  readonly label: string
  readonly key: string
  readonly limit: number | null
  readonly limit_reset: string | null
  readonly created_at: string
  /** USD spent (set by tests: nothing spends here). */
  readonly usage: number
  /** How many times its limit was changed (PATCH): what a top-up race test counts. */
  readonly limitChanges: number
}

const error = (status: number, message: string): EmulatorResponse => ({ status, body: { error: { code: status, message } } })

const publicView = (k: EmulatedKey) => ({
  hash: k.hash,
  name: k.name,
  label: k.label,
  disabled: false,
  limit: k.limit,
  limit_remaining: k.limit === null ? null : Math.max(0, k.limit - k.usage),
  limit_reset: k.limit_reset,
  include_byok_in_limit: false,
  usage: k.usage,
  usage_daily: k.usage,
  usage_weekly: k.usage,
  usage_monthly: k.usage,
  byok_usage: 0,
  byok_usage_daily: 0,
  byok_usage_weekly: 0,
  byok_usage_monthly: 0,
  created_at: k.created_at,
  updated_at: null
})

export const startOpenRouterEmulator = (options: { readonly managementKey: string }) =>
  Effect.gen(function*() {
    const keys = new Map<string, EmulatedKey>()
    const issued: Array<string> = []
    let sequence = 0

    const handle = (request: EmulatorRequest): EmulatorResponse => {
      if (request.headers.authorization !== `Bearer ${options.managementKey}`) return error(401, "No auth credentials found")
      if (request.path === "/api/v1/keys" && request.method === "POST") {
        const body = request.body as { name?: unknown; limit?: unknown; limit_reset?: unknown } | undefined
        if (typeof body?.name !== "string" || body.name === "") return error(400, "name is required")
        if (body.limit !== undefined && body.limit !== null && typeof body.limit !== "number") return error(400, "limit must be a number")
        if (body.limit_reset !== undefined && body.limit_reset !== null && !["daily", "weekly", "monthly"].includes(String(body.limit_reset))) {
          return error(400, "limit_reset must be daily, weekly or monthly")
        }
        const key = `sk-or-v1-${randomBytes(32).toString("hex")}`
        const created: EmulatedKey = {
          hash: createHash("sha256").update(key).digest("hex"),
          name: body.name,
          label: `${key.slice(0, 12)}...${key.slice(-4)}`,
          key,
          limit: typeof body.limit === "number" ? body.limit : null,
          limit_reset: typeof body.limit_reset === "string" ? body.limit_reset : null,
          created_at: new Date(Date.UTC(2026, 0, 1) + sequence++ * 1000).toISOString(),
          usage: 0,
          limitChanges: 0
        }
        keys.set(created.hash, created)
        issued.push(key)
        return { status: 201, body: { data: publicView(created), key } }
      }
      if (request.path === "/api/v1/keys" && request.method === "GET") {
        const offset = Number(request.query.get("offset") ?? "0")
        if (!Number.isInteger(offset) || offset < 0) return error(400, "offset must be a whole number ≥ 0")
        const page = [...keys.values()].sort((a, b) => a.created_at.localeCompare(b.created_at)).slice(offset, offset + 100)
        return { status: 200, body: { data: page.map(publicView) } }
      }
      const one = /^\/api\/v1\/keys\/([^/]+)$/.exec(request.path)
      if (one !== null && request.method === "DELETE") {
        const hash = decodeURIComponent(one[1]!)
        if (!keys.delete(hash)) return error(404, "Key not found")
        return { status: 200, body: { deleted: true } }
      }
      if (one !== null && request.method === "GET") {
        const key = keys.get(decodeURIComponent(one[1]!))
        return key === undefined ? error(404, "Key not found") : { status: 200, body: { data: publicView(key) } }
      }
      if (one !== null && request.method === "PATCH") {
        const key = keys.get(decodeURIComponent(one[1]!))
        if (key === undefined) return error(404, "Key not found")
        const body = request.body as { limit?: unknown } | undefined
        if (body?.limit !== undefined && body.limit !== null && (typeof body.limit !== "number" || body.limit < 0)) return error(400, "limit must be a number ≥ 0")
        const updated: EmulatedKey = body?.limit === undefined ? key : { ...key, limit: body.limit as number | null, limitChanges: key.limitChanges + 1 }
        keys.set(key.hash, updated)
        return { status: 200, body: { data: publicView(updated) } }
      }
      return error(404, `no route ${request.method} ${request.path}`)
    }

    const emulator = yield* startHttpEmulator(handle)
    return {
      ...emulator,
      /** The base URL to give the provider (OPENROUTER_API_URL). */
      apiUrl: `${emulator.url}/api/v1`,
      /** Keys that exist now. */
      keys: () => [...keys.values()],
      /** Every secret ever handed out (to check none leaked into logs). */
      issuedSecrets: () => [...issued],
      /** Sets what a key has spent (nothing spends here). */
      setUsage: (hash: string, usage: number) => {
        const key = keys.get(hash)
        if (key !== undefined) keys.set(hash, { ...key, usage })
      },
      /** Makes a key directly, as an older run or another tool did. */
      seedKey: (name: string) => handle({ method: "POST", path: "/api/v1/keys", query: new URLSearchParams(), headers: { authorization: `Bearer ${options.managementKey}` }, body: { name } })
    }
  })

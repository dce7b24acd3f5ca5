/**
 * An AgentMail emulator on loopback: `POST /v0/inboxes` (idempotent by `client_id`), `GET /v0/inboxes`,
 * `DELETE /v0/inboxes/{id}`, API-key auth, and the harness's injectable faults.
 */
import { type EmulatorRequest, type EmulatorResponse, startHttpEmulator } from "@warmpool/reconciler/testing"
import { Effect } from "effect"

export interface EmulatedInbox {
  readonly inbox_id: string
  readonly email: string
  readonly display_name: string | null
  readonly client_id: string | null
  readonly created_at: string
}

const error = (status: number, name: string, message: string): EmulatorResponse => ({ status, body: { name, message } })

export const startAgentMailEmulator = (options: { readonly apiKey: string; readonly defaultDomain?: string }) =>
  Effect.gen(function*() {
    const inboxes = new Map<string, EmulatedInbox>()
    const handle = (request: EmulatorRequest): EmulatorResponse => {
      if (request.headers.authorization !== `Bearer ${options.apiKey}`) return error(401, "UnauthorizedError", "Invalid API key")
      if (request.path === "/v0/inboxes" && request.method === "POST") {
        const body = (request.body ?? {}) as { username?: unknown; domain?: unknown; display_name?: unknown; client_id?: unknown }
        if (body.username !== undefined && (typeof body.username !== "string" || !/^[a-z0-9._-]+$/.test(body.username))) {
          return error(400, "ValidationError", "username must be lower-case letters, digits, '.', '_' or '-'")
        }
        const existing = [...inboxes.values()].find((i) => body.client_id !== undefined && i.client_id === body.client_id)
        if (existing !== undefined) return { status: 200, body: existing }
        const domain = typeof body.domain === "string" ? body.domain : options.defaultDomain ?? "agentmail.to"
        const email = `${typeof body.username === "string" ? body.username : `inbox${inboxes.size}`}@${domain}`
        if (inboxes.has(email)) return error(403, "AlreadyExistsError", "Inbox already exists")
        const inbox: EmulatedInbox = {
          inbox_id: email,
          email,
          display_name: typeof body.display_name === "string" ? body.display_name : null,
          client_id: typeof body.client_id === "string" ? body.client_id : null,
          created_at: new Date().toISOString()
        }
        inboxes.set(email, inbox)
        return { status: 200, body: inbox }
      }
      if (request.path === "/v0/inboxes" && request.method === "GET") {
        return { status: 200, body: { count: inboxes.size, inboxes: [...inboxes.values()] } }
      }
      const one = /^\/v0\/inboxes\/([^/]+)$/.exec(request.path)
      if (one !== null && request.method === "DELETE") {
        if (!inboxes.delete(decodeURIComponent(one[1]!))) return error(404, "NotFoundError", "Inbox not found")
        return { status: 200, body: {} }
      }
      return error(404, "NotFoundError", `no route ${request.method} ${request.path}`)
    }
    const emulator = yield* startHttpEmulator(handle)
    return { ...emulator, apiUrl: `${emulator.url}/v0`, inboxes: () => [...inboxes.values()] }
  })

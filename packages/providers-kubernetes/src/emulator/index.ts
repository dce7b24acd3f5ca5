/**
 * A Kubernetes API server emulator for tests and benchmarks: a real HTTP server on loopback answering the calls
 * the provider makes (Pods, `pods/status`, Secrets), with the API's rules — paginated lists (`limit`/`continue`,
 * 410 once a token's snapshot is compacted away), watches from a `resourceVersion` (an ERROR 410 event once it is
 * compacted away), 409 AlreadyExists / Conflict, 404, 429 with Retry-After, a ResourceQuota on Pods, and garbage
 * collection of what `ownerReferences` tie to a deleted Pod. Every object it receives is validated against
 * Kubernetes' published OpenAPI schemas (the `kubernetes-models` validators, generated from them): an invalid one is
 * refused with 422, as the real server would. Every request is recorded, so tests and benchmarks count calls.
 */
import { Pod, Secret } from "kubernetes-models/v1"
import { Effect, type Scope } from "effect"
import { randomUUID } from "node:crypto"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"

/** What the emulator keeps of an object: plain JSON, as the wire carries it. */
type KubeObject = Record<string, any>

type Kind = "pods" | "secrets"

export interface RecordedKubeCall {
  readonly method: string
  readonly path: string
  /** `list`, `watch`, `get`, `create`, `update`, `patch` or `delete`. */
  readonly verb: string
  readonly resource: string
  /** Who called: the user of the token sent (`warmpool` for `kubeconfig`'s), or `anonymous`. */
  readonly user: string
}

/** A failure served instead of the real answer. */
export interface KubeFault {
  readonly status: number
  readonly reason: string
  readonly message: string
  readonly retryAfterSeconds?: number
}

export interface KubeEmulatorOptions {
  /** The namespace the kubeconfig's context names. Default `warmpool`. */
  readonly namespace?: string
  /** Most Pods a namespace may hold (a ResourceQuota on `pods`); none by default. */
  readonly podQuota?: number
}

export interface KubeEmulator {
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  readonly namespace: string
  /** A kubeconfig (YAML) whose current context points at the emulator, with its token (user `warmpool`). */
  readonly kubeconfig: string
  /** A kubeconfig for another user (a test's kubelet), so that its calls are told apart from the provider's. */
  readonly kubeconfigFor: (user: string) => string
  /** Every request served, in order. */
  readonly calls: () => ReadonlyArray<RecordedKubeCall>
  /** Serve `fault` to the next `times` (default 1) requests matching `verb` and `resource` (any when absent). */
  readonly inject: (fault: KubeFault, match?: { readonly verb?: string; readonly resource?: string; readonly times?: number }) => void
  /** Forgets the history before now: a watch or a list `continue` from an older version gets 410 Gone. */
  readonly compact: () => void
  /** Ends every open watch, as a server does at its request timeout or a proxy on a dropped connection. */
  readonly dropWatches: () => void
  /** Open watch connections now. */
  readonly openWatches: () => number
  readonly setPodQuota: (pods: number | undefined) => void
  /** The stored objects (copies). */
  readonly pods: (namespace?: string) => ReadonlyArray<KubeObject>
  readonly secrets: (namespace?: string) => ReadonlyArray<KubeObject>
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/

const status = (code: number, reason: string, message: string, details?: KubeObject): KubeObject => ({
  kind: "Status",
  apiVersion: "v1",
  metadata: {},
  status: "Failure",
  message,
  reason,
  ...(details === undefined ? {} : { details }),
  code
})

const clone = <A>(value: A): A => structuredClone(value)

/** `a=b,c!=d,e,!f`: the equality-based label selectors. */
const matchesSelector = (selector: string | null, labels: Readonly<Record<string, string>> | undefined): boolean => {
  if (selector === null || selector.trim() === "") return true
  const own = labels ?? {}
  return selector.split(",").map((term) => term.trim()).every((term) => {
    if (term.startsWith("!")) return !(term.slice(1) in own)
    const notEqual = term.indexOf("!=")
    if (notEqual > 0) return own[term.slice(0, notEqual)] !== term.slice(notEqual + 2)
    const equal = term.indexOf("=")
    if (equal > 0) return own[term.slice(0, equal)] === term.slice(equal + 1).replace(/^=/, "")
    return term in own
  })
}

/** JSON merge patch (RFC 7386). */
const mergePatch = (target: unknown, patch: unknown): unknown => {
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) return patch
  const base: KubeObject = typeof target === "object" && target !== null && !Array.isArray(target) ? { ...target as KubeObject } : {}
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete base[key]
    else base[key] = mergePatch(base[key], value)
  }
  return base
}

class Refused extends Error {
  constructor(readonly answer: KubeObject) {
    super(answer.message)
  }
}

const invalid = (kind: string, name: string, causes: ReadonlyArray<string>) =>
  new Refused(status(422, "Invalid", `${kind} "${name}" is invalid: ${causes.join("; ")}`, { name, kind: kind.toLowerCase() }))

/** Validation the published schemas leave to the server: names and label values. */
const metadataProblems = (object: KubeObject): Array<string> => {
  const problems: Array<string> = []
  const name = object.metadata?.name
  if (typeof name !== "string" || name === "") problems.push("metadata.name: Required value")
  else if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) problems.push(`metadata.name: Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`)
  for (const [key, value] of Object.entries((object.metadata?.labels ?? {}) as Record<string, unknown>)) {
    if (typeof value !== "string" || value.length > 63 || !LABEL_VALUE.test(value)) problems.push(`metadata.labels: Invalid value: "${String(value)}" (label ${key})`)
  }
  return problems
}

const schemaProblems = (kind: Kind, object: KubeObject): Array<string> => {
  try {
    if (kind === "pods") new Pod(object as ConstructorParameters<typeof Pod>[0]).validate()
    else new Secret(object as ConstructorParameters<typeof Secret>[0]).validate()
    return []
  } catch (error) {
    return [error instanceof Error ? error.message : String(error)]
  }
}

const validate = (kind: Kind, object: KubeObject) => {
  const problems = [...metadataProblems(object), ...schemaProblems(kind, object)]
  if (kind === "pods") {
    for (const container of object.spec?.containers ?? []) {
      if (typeof container?.name === "string" && !DNS_LABEL.test(container.name)) problems.push(`spec.containers.name: Invalid value: "${container.name}"`)
    }
  }
  if (kind === "secrets") {
    for (const key of Object.keys(object.data ?? {})) {
      if (!/^[-._a-zA-Z0-9]+$/.test(key)) problems.push(`data[${key}]: Invalid value: a valid config key must consist of alphanumeric characters, '-', '_' or '.'`)
    }
    for (const value of Object.values(object.data ?? {})) {
      if (typeof value !== "string" || Buffer.from(value, "base64").toString("base64") !== value) problems.push("data: Invalid value: not base64")
    }
  }
  if (problems.length > 0) throw invalid(kind === "pods" ? "Pod" : "Secret", String(object.metadata?.name ?? ""), problems)
}

interface Watcher {
  readonly kind: Kind
  readonly namespace: string
  readonly selector: string | null
  readonly res: ServerResponse
}

interface HistoryEntry {
  readonly rv: number
  readonly kind: Kind
  readonly namespace: string
  readonly type: "ADDED" | "MODIFIED" | "DELETED"
  readonly object: KubeObject
}

/** A kubeconfig whose current context is `server` with a bearer token. */
export const kubeconfigOf = (server: string, token: string, namespace: string, options: { readonly insecure?: boolean } = {}): string =>
  [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: cluster",
    "  cluster:",
    `    server: ${server}`,
    // client-node speaks plain HTTP (loopback emulators) only with TLS verification off.
    ...(options.insecure === true ? ["    insecure-skip-tls-verify: true"] : []),
    "users:",
    "- name: user",
    "  user:",
    `    token: ${token}`,
    "contexts:",
    "- name: context",
    "  context:",
    "    cluster: cluster",
    "    user: user",
    `    namespace: ${namespace}`,
    "current-context: context",
    ""
  ].join("\n")

export const startKubeEmulator = (options: KubeEmulatorOptions = {}): Effect.Effect<KubeEmulator, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<KubeEmulator & { readonly close: () => void }>((resume) => {
      const users = new Map<string, string>()
      const tokenOf = (user: string) => {
        const known = [...users].find(([, u]) => u === user)
        if (known !== undefined) return known[0]
        const token = randomUUID()
        users.set(token, user)
        return token
      }
      const defaultNamespace = options.namespace ?? "warmpool"
      let podQuota = options.podQuota
      let revision = 1
      let compactedBelow = 0
      const store: Record<Kind, Map<string, KubeObject>> = { pods: new Map(), secrets: new Map() }
      const history: Array<HistoryEntry> = []
      const watchers = new Set<Watcher>()
      const calls: Array<RecordedKubeCall> = []
      const faults: Array<{ fault: KubeFault; verb?: string | undefined; resource?: string | undefined; left: number }> = []

      const keyOf = (namespace: string, name: string) => `${namespace}/${name}`
      const inNamespace = (kind: Kind, namespace: string) => [...store[kind].values()].filter((o) => o.metadata.namespace === namespace)

      const sendLine = (res: ServerResponse, event: KubeObject) => res.write(`${JSON.stringify(event)}\n`)

      const record = (kind: Kind, namespace: string, type: HistoryEntry["type"], object: KubeObject) => {
        history.push({ rv: Number(object.metadata.resourceVersion), kind, namespace, type, object: clone(object) })
        for (const watcher of watchers) {
          if (watcher.kind === kind && watcher.namespace === namespace && matchesSelector(watcher.selector, object.metadata.labels)) {
            sendLine(watcher.res, { type, object })
          }
        }
      }

      const nextVersion = () => String(++revision)

      const put = (kind: Kind, object: KubeObject, type: "ADDED" | "MODIFIED") => {
        object.metadata.resourceVersion = nextVersion()
        store[kind].set(keyOf(object.metadata.namespace, object.metadata.name), object)
        record(kind, object.metadata.namespace, type, object)
        return clone(object)
      }

      const remove = (kind: Kind, object: KubeObject) => {
        store[kind].delete(keyOf(object.metadata.namespace, object.metadata.name))
        const gone = { ...object, metadata: { ...object.metadata, resourceVersion: nextVersion() } }
        record(kind, object.metadata.namespace, "DELETED", gone)
        return clone(gone)
      }

      /** The garbage collector: what only gone owners held goes, in the background (as kube-controller-manager's does). */
      const collectGarbage = () =>
        setImmediate(() => {
          const liveUids = new Set([...store.pods.values(), ...store.secrets.values()].map((o) => o.metadata.uid))
          for (const kind of ["pods", "secrets"] as const) {
            for (const object of [...store[kind].values()]) {
              const owners: Array<KubeObject> = object.metadata.ownerReferences ?? []
              if (owners.length > 0 && owners.every((owner) => !liveUids.has(owner.uid))) remove(kind, object)
            }
          }
        })

      const create = (kind: Kind, namespace: string, body: KubeObject) => {
        if (body.metadata?.namespace !== undefined && body.metadata.namespace !== namespace) {
          throw new Refused(status(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request"))
        }
        const object: KubeObject = clone(body)
        object.metadata = { ...object.metadata, namespace }
        validate(kind, object)
        const name = object.metadata.name as string
        const singular = kind === "pods" ? "pods" : "secrets"
        if (store[kind].has(keyOf(namespace, name))) {
          throw new Refused(status(409, "AlreadyExists", `${singular} "${name}" already exists`, { name, kind: singular }))
        }
        if (kind === "pods" && podQuota !== undefined) {
          const used = inNamespace("pods", namespace).length
          if (used >= podQuota) {
            throw new Refused(status(403, "Forbidden", `pods "${name}" is forbidden: exceeded quota: pod-quota, requested: pods=1, used: pods=${used}, limited: pods=${podQuota}`, { name, kind: "pods" }))
          }
        }
        object.metadata.uid = randomUUID()
        object.metadata.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, "Z")
        object.metadata.generation = 1
        if (kind === "pods") {
          object.spec = { dnsPolicy: "ClusterFirst", schedulerName: "default-scheduler", terminationGracePeriodSeconds: 30, ...object.spec }
          object.status = { phase: "Pending", qosClass: "BestEffort" }
        }
        if (kind === "secrets") object.type ??= "Opaque"
        return put(kind, object, "ADDED")
      }

      const find = (kind: Kind, namespace: string, name: string) => {
        const found = store[kind].get(keyOf(namespace, name))
        if (found === undefined) throw new Refused(status(404, "NotFound", `${kind} "${name}" not found`, { name, kind }))
        return found
      }

      const checkVersion = (existing: KubeObject, body: KubeObject, kind: Kind) => {
        const asked = body.metadata?.resourceVersion
        if (asked !== undefined && asked !== "" && asked !== existing.metadata.resourceVersion) {
          throw new Refused(status(409, "Conflict", `Operation cannot be fulfilled on ${kind} "${existing.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`))
        }
      }

      /** PUT of a whole object (secrets) or of `pods/status` (only the status is taken, as the real subresource does). */
      const replace = (kind: Kind, namespace: string, name: string, body: KubeObject, subresource: string | undefined) => {
        const existing = find(kind, namespace, name)
        checkVersion(existing, body, kind)
        const next: KubeObject = subresource === "status"
          ? { ...clone(existing), status: clone(body.status ?? {}) }
          : { ...clone(body), metadata: { ...clone(body.metadata ?? {}), namespace, name, uid: existing.metadata.uid, creationTimestamp: existing.metadata.creationTimestamp } }
        if (kind === "pods" && subresource !== "status" && JSON.stringify(next.spec) !== JSON.stringify(existing.spec)) {
          throw invalid("Pod", name, ["spec: Forbidden: pod updates may not change fields other than image, activeDeadlineSeconds, tolerations"])
        }
        validate(kind, next)
        return put(kind, next, "MODIFIED")
      }

      const patch = (kind: Kind, namespace: string, name: string, body: KubeObject, subresource: string | undefined) => {
        const existing = find(kind, namespace, name)
        const patched = mergePatch(clone(existing), subresource === "status" ? { status: body.status } : body) as KubeObject
        return replace(kind, namespace, name, { ...patched, metadata: { ...patched.metadata, resourceVersion: existing.metadata.resourceVersion } }, subresource)
      }

      const list = (kind: Kind, namespace: string, query: URLSearchParams) => {
        const limit = Number(query.get("limit") ?? 0)
        const token = query.get("continue")
        let snapshot = revision
        let offset = 0
        if (token !== null && token !== "") {
          const decoded = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { rv: number; offset: number }
          if (decoded.rv < compactedBelow) {
            throw new Refused(status(410, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."))
          }
          snapshot = decoded.rv
          offset = decoded.offset
        }
        // The objects as of the snapshot: today's, minus what was made after it, plus what was deleted after it.
        const asOf = new Map(inNamespace(kind, namespace).map((o) => [o.metadata.name as string, o]))
        for (const entry of [...history].reverse()) {
          if (entry.rv <= snapshot) break
          if (entry.kind !== kind || entry.namespace !== namespace) continue
          if (entry.type === "ADDED") asOf.delete(entry.object.metadata.name)
          else asOf.set(entry.object.metadata.name, entry.object)
        }
        const items = [...asOf.values()]
          .filter((o) => matchesSelector(query.get("labelSelector"), o.metadata.labels))
          .sort((a, b) => String(a.metadata.name).localeCompare(String(b.metadata.name)))
        const page = limit > 0 ? items.slice(offset, offset + limit) : items.slice(offset)
        const more = limit > 0 && offset + limit < items.length
        return {
          kind: kind === "pods" ? "PodList" : "SecretList",
          apiVersion: "v1",
          metadata: {
            resourceVersion: String(snapshot),
            ...(more ? { continue: Buffer.from(JSON.stringify({ rv: snapshot, offset: offset + limit })).toString("base64url"), remainingItemCount: items.length - offset - limit } : {})
          },
          items: page.map(clone)
        }
      }

      const watch = (kind: Kind, namespace: string, query: URLSearchParams, res: ServerResponse) => {
        res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" })
        // The headers go at once, as the real server sends them: a quiet watch is still an open one.
        res.flushHeaders()
        const selector = query.get("labelSelector")
        const from = query.get("resourceVersion")
        if (from === null || from === "" || from === "0") {
          // No version: the current state as synthetic ADDED events, then changes.
          for (const object of inNamespace(kind, namespace)) if (matchesSelector(selector, object.metadata.labels)) sendLine(res, { type: "ADDED", object })
        } else {
          const version = Number(from)
          if (version < compactedBelow) {
            sendLine(res, { type: "ERROR", object: status(410, "Expired", `too old resource version: ${version} (${compactedBelow})`) })
            return res.end()
          }
          for (const entry of history) {
            if (entry.rv > version && entry.kind === kind && entry.namespace === namespace && matchesSelector(selector, entry.object.metadata.labels)) {
              sendLine(res, { type: entry.type, object: entry.object })
            }
          }
        }
        const watcher: Watcher = { kind, namespace, selector, res }
        watchers.add(watcher)
        res.on("close", () => watchers.delete(watcher))
      }

      const remove404 = (kind: Kind, namespace: string, name: string) => {
        const gone = remove(kind, find(kind, namespace, name))
        collectGarbage()
        return gone
      }

      const route = (method: string, parts: ReadonlyArray<string>, query: URLSearchParams, body: KubeObject | undefined, res: ServerResponse): { verb: string; resource: string; answer?: () => unknown } => {
        // /api/v1/namespaces/{ns}/{kind}[/{name}[/{subresource}]]
        if (parts[0] !== "api" || parts[1] !== "v1" || parts[2] !== "namespaces" || parts[3] === undefined) return { verb: "unknown", resource: parts.join("/") }
        const namespace = parts[3]
        const kind = parts[4]
        if (kind !== "pods" && kind !== "secrets") return { verb: "unknown", resource: parts.join("/") }
        const name = parts[5]
        const subresource = parts[6]
        if (subresource !== undefined && (kind !== "pods" || subresource !== "status")) return { verb: "unknown", resource: parts.join("/") }
        const resource = subresource === undefined ? kind : `${kind}/${subresource}`
        if (name === undefined) {
          if (method === "GET" && query.get("watch") === "true") return { verb: "watch", resource, answer: () => watch(kind, namespace, query, res) }
          if (method === "GET") return { verb: "list", resource, answer: () => list(kind, namespace, query) }
          if (method === "POST") return { verb: "create", resource, answer: () => create(kind, namespace, body ?? {}) }
          return { verb: "unknown", resource }
        }
        if (method === "GET") return { verb: "get", resource, answer: () => clone(find(kind, namespace, name)) }
        if (method === "PUT") return { verb: "update", resource, answer: () => replace(kind, namespace, name, body ?? {}, subresource) }
        if (method === "PATCH") return { verb: "patch", resource, answer: () => patch(kind, namespace, name, body ?? {}, subresource) }
        if (method === "DELETE" && subresource === undefined) return { verb: "delete", resource, answer: () => remove404(kind, namespace, name) }
        return { verb: "unknown", resource }
      }

      const sendJson = (res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(code, { "content-type": "application/json", ...headers })
        res.end(JSON.stringify(body))
      }

      const serve = async (req: IncomingMessage, res: ServerResponse) => {
        const url = new URL(req.url ?? "/", "http://127.0.0.1")
        const method = req.method ?? "GET"
        const chunks: Array<Buffer> = []
        for await (const chunk of req) chunks.push(chunk as Buffer)
        const text = Buffer.concat(chunks).toString("utf8")
        const parts = url.pathname.split("/").filter((p) => p !== "").map(decodeURIComponent)
        let body: KubeObject | undefined
        try {
          body = text === "" ? undefined : JSON.parse(text)
        } catch {
          return sendJson(res, 400, status(400, "BadRequest", "the body is not JSON"))
        }
        const routed = route(method, parts, url.searchParams, body, res)
        const user = users.get((req.headers.authorization ?? "").replace(/^Bearer /, ""))
        calls.push({ method, path: url.pathname, verb: routed.verb, resource: routed.resource, user: user ?? "anonymous" })
        if (user === undefined) return sendJson(res, 401, status(401, "Unauthorized", "Unauthorized"))
        const fault = faults.find((f) => f.left > 0 && (f.verb === undefined || f.verb === routed.verb) && (f.resource === undefined || f.resource === routed.resource))
        if (fault !== undefined) {
          fault.left--
          const { retryAfterSeconds } = fault.fault
          return sendJson(res, fault.fault.status, status(fault.fault.status, fault.fault.reason, fault.fault.message), retryAfterSeconds === undefined ? {} : { "retry-after": String(retryAfterSeconds) })
        }
        if (routed.answer === undefined) return sendJson(res, 404, status(404, "NotFound", "the server could not find the requested resource"))
        try {
          const answer = routed.answer()
          if (routed.verb !== "watch") sendJson(res, routed.verb === "create" ? 201 : 200, answer)
        } catch (error) {
          if (error instanceof Refused) return sendJson(res, error.answer.code, error.answer)
          throw error
        }
      }

      const server = createServer((req, res) => {
        serve(req, res).catch((error: unknown) => {
          if (!res.headersSent) sendJson(res, 500, status(500, "InternalError", String(error)))
          else res.end()
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        const url = `http://127.0.0.1:${port}`
        resume(Effect.succeed({
          url,
          namespace: defaultNamespace,
          kubeconfig: kubeconfigOf(url, tokenOf("warmpool"), defaultNamespace, { insecure: true }),
          kubeconfigFor: (user) => kubeconfigOf(url, tokenOf(user), defaultNamespace, { insecure: true }),
          calls: () => [...calls],
          inject: (fault, match = {}) => faults.push({ fault, verb: match.verb, resource: match.resource, left: match.times ?? 1 }),
          compact: () => {
            compactedBelow = revision
            history.length = 0
          },
          dropWatches: () => {
            for (const watcher of watchers) watcher.res.end()
            watchers.clear()
          },
          openWatches: () => watchers.size,
          setPodQuota: (pods) => {
            podQuota = pods
          },
          pods: (namespace = defaultNamespace) => inNamespace("pods", namespace).map(clone),
          secrets: (namespace = defaultNamespace) => inNamespace("secrets", namespace).map(clone),
          close: () => {
            for (const watcher of watchers) watcher.res.end()
            server.closeAllConnections()
            server.close()
          }
        }))
      })
    }),
    (emulator) => Effect.sync(() => emulator.close())
  )
export { type KubeletOptions, makeKubelet } from "./kubelet.js"

/**
 * A container registry on loopback, as the Docker Registry HTTP API v2 answers: a manifest HEAD without a token
 * gets a Bearer challenge naming the token realm; an anonymous pull token from it opens the HEAD, whose
 * `Docker-Content-Digest` names what the tag points to now. `push` moves a tag (a new digest).
 */
import { startHttpEmulator } from "@warmpool/reconciler/testing"
import { Effect } from "effect"
import { createHash, randomBytes } from "node:crypto"

const MANIFEST_TYPES = ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json"]

export const startRegistryEmulator = Effect.gen(function*() {
  const tags = new Map<string, string>()
  const tokens = new Set<string>()
  let base = ""
  const emulator = yield* startHttpEmulator((request) => {
    if (request.method === "GET" && request.path === "/token") {
      const scope = request.query.get("scope") ?? ""
      if (!/^repository:[^:]+:pull$/.test(scope)) return { status: 400, body: { errors: [{ code: "UNSUPPORTED", message: "scope" }] } }
      const token = randomBytes(16).toString("hex")
      tokens.add(token)
      return { status: 200, body: { token } }
    }
    const manifest = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(request.path)
    if (manifest === null || (request.method !== "HEAD" && request.method !== "GET")) return { status: 404, body: { errors: [{ code: "NOT_FOUND" }] } }
    const [, repository, tag] = manifest
    const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? "")?.[1]
    if (bearer === undefined || !tokens.has(bearer)) {
      return {
        status: 401,
        headers: { "www-authenticate": `Bearer realm="${base}/token",service="registry.test",scope="repository:${repository}:pull"` },
        body: { errors: [{ code: "UNAUTHORIZED" }] }
      }
    }
    const accepted = (request.headers.accept ?? "").split(",").map((t) => t.trim())
    if (!MANIFEST_TYPES.some((t) => accepted.includes(t))) return { status: 404, body: { errors: [{ code: "MANIFEST_UNKNOWN", message: "no acceptable manifest type" }] } }
    const digest = tags.get(`${repository}:${decodeURIComponent(tag!)}`)
    if (digest === undefined) return { status: 404, body: { errors: [{ code: "MANIFEST_UNKNOWN" }] } }
    return { status: 200, headers: { "docker-content-digest": digest, "content-type": MANIFEST_TYPES[0]! }, body: {} }
  })
  base = emulator.url
  return {
    ...emulator,
    /** Points `repository:tag` at a new image; answers its digest. */
    push: (repository: string, tag: string) => {
      const digest = `sha256:${createHash("sha256").update(randomBytes(32)).digest("hex")}`
      tags.set(`${repository}:${tag}`, digest)
      return digest
    }
  }
})

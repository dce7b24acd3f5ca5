/**
 * Image tags resolved to digests, so that a redeploy really pulls what a tag points to now: a platform handed the
 * same `name:tag` again may keep its cached image, and a tag that moved would be a no-op. The registry is asked
 * as any client asks one (the Docker Registry HTTP API v2): `HEAD /v2/<repo>/manifests/<tag>`, answered with a
 * Bearer challenge, an anonymous pull token from the challenge's realm, the HEAD again; its
 * `Docker-Content-Digest` names the image. When the registry cannot say, the tag is used, and the answer says why.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { Config, Context, Duration, Effect, Layer, Option, Schema } from "effect"

/** What to deploy, and whether it is pinned to a digest (or why not). */
export interface ResolvedImage {
  /** `repo@sha256:…` when resolved, else the image as given. */
  readonly image: string
  readonly digest: string | null
  /** Why the tag is deployed as it is (null when resolved). */
  readonly unresolved: string | null
}

export class ImageDigests extends Context.Tag("@warmpool/server/ImageDigests")<
  ImageDigests,
  { readonly resolve: (image: string) => Effect.Effect<ResolvedImage> }
>() {}

/** Manifest types a registry may answer for a tag: multi-platform indexes first, as `docker pull` asks. */
const MANIFEST_TYPES = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.oci.image.manifest.v1+json"
].join(", ")

export interface ImageReference {
  /** The registry's host as the platform knows it (`ghcr.io`, `registry-1.docker.io`). */
  readonly host: string
  readonly repository: string
  readonly tag: string
  /** The image without its tag, as written (what the digest is appended to). */
  readonly name: string
}

/** `host/repo:tag` (host and tag optional, Docker Hub's rules for short names); none for a reference pinned already. */
export const parseImageReference = (image: string): Option.Option<ImageReference> => {
  const ref = image.replace(/^https?:\/\//, "")
  if (ref.includes("@")) return Option.none()
  const slash = ref.lastIndexOf("/")
  const colon = ref.lastIndexOf(":")
  const tagged = colon > slash
  const name = tagged ? ref.slice(0, colon) : ref
  const tag = tagged ? ref.slice(colon + 1) : "latest"
  const [first, ...rest] = name.split("/")
  const hasHost = rest.length > 0 && (first!.includes(".") || first!.includes(":") || first === "localhost")
  if (name === "" || tag === "") return Option.none()
  if (hasHost) return Option.some({ host: first === "docker.io" ? "registry-1.docker.io" : first!, repository: rest.join("/"), tag, name })
  return Option.some({ host: "registry-1.docker.io", repository: rest.length === 0 ? `library/${name}` : name, tag, name })
}

/** `Bearer realm="…",service="…",scope="…"` as a record. */
const challengeOf = (header: string | undefined): Option.Option<Record<string, string>> => {
  if (header === undefined || !/^bearer\s/i.test(header)) return Option.none()
  const params: Record<string, string> = {}
  for (const match of header.slice(7).matchAll(/(\w+)="([^"]*)"/g)) params[match[1]!] = match[2]!
  return params.realm === undefined ? Option.none() : Option.some(params)
}

const TokenAnswer = Schema.Struct({ token: Schema.optional(Schema.String), access_token: Schema.optional(Schema.String) })

export interface ImageDigestsOptions {
  /** Ask this base URL instead of `https://<host>` (a registry emulator in tests, a pull-through mirror). */
  readonly registryUrl: Option.Option<string>
  /** Per request. Default 5 s. */
  readonly timeout?: Duration.DurationInput
}

export const makeImageDigests = (options: ImageDigestsOptions) =>
  Effect.map(HttpClient.HttpClient, (client) => {
    const timeout = options.timeout ?? Duration.seconds(5)
    const head = (url: string, token: string | undefined) =>
      client.execute(
        HttpClientRequest.head(url).pipe(
          HttpClientRequest.setHeader("accept", MANIFEST_TYPES),
          token === undefined ? (r) => r : HttpClientRequest.bearerToken(token)
        )
      ).pipe(Effect.scoped, Effect.timeout(timeout))

    const pullToken = (challenge: Record<string, string>, ref: ImageReference) =>
      Effect.gen(function*() {
        const url = new URL(challenge.realm!)
        if (challenge.service !== undefined) url.searchParams.set("service", challenge.service)
        url.searchParams.set("scope", challenge.scope ?? `repository:${ref.repository}:pull`)
        const answer = yield* client.get(url.toString()).pipe(
          Effect.flatMap((response) => response.status === 200 ? response.json : Effect.fail(new Error(`token endpoint answered ${response.status}`))),
          Effect.flatMap(Schema.decodeUnknown(TokenAnswer)),
          Effect.scoped,
          Effect.timeout(timeout)
        )
        const token = answer.token ?? answer.access_token
        return token === undefined ? yield* Effect.fail(new Error("token endpoint gave no token")) : token
      })

    const digestOf = (ref: ImageReference) =>
      Effect.gen(function*() {
        const base = Option.getOrElse(options.registryUrl, () => `https://${ref.host}`).replace(/\/$/, "")
        const url = `${base}/v2/${ref.repository}/manifests/${encodeURIComponent(ref.tag)}`
        let response = yield* head(url, undefined)
        if (response.status === 401) {
          const challenge = challengeOf(response.headers["www-authenticate"])
          if (Option.isNone(challenge)) return yield* Effect.fail(new Error("the registry asks for credentials it does not name"))
          response = yield* head(url, yield* pullToken(challenge.value, ref))
        }
        if (response.status !== 200) return yield* Effect.fail(new Error(`the manifest HEAD answered ${response.status}`))
        const digest = response.headers["docker-content-digest"]
        if (digest === undefined || !/^sha256:[0-9a-f]{64}$/.test(digest)) return yield* Effect.fail(new Error(`unexpected digest ${digest ?? "(none)"}`))
        return digest
      })

    return ImageDigests.of({
      resolve: (image) =>
        Option.match(parseImageReference(image), {
          onNone: () => Effect.succeed({ image, digest: null, unresolved: image.includes("@") ? "pinned to a digest already" : "not an image reference" }),
          onSome: (ref) =>
            digestOf(ref).pipe(
              Effect.map((digest): ResolvedImage => ({ image: `${ref.name}@${digest}`, digest, unresolved: null })),
              Effect.catchAll((error) => {
                const why = error instanceof Error ? error.message : String(error)
                return Effect.as(
                  Effect.logWarning(`image ${image}: no digest from its registry (${why}); deploying the tag`),
                  { image, digest: null, unresolved: why }
                )
              }),
              Effect.withSpan("ImageDigests.resolve", { attributes: { image } })
            )
        })
    })
  })

export const ImageDigestsLive = {
  layer: (options: ImageDigestsOptions): Layer.Layer<ImageDigests, never, HttpClient.HttpClient> => Layer.effect(ImageDigests, makeImageDigests(options)),
  /** IMAGE_REGISTRY_URL: where to ask instead of the image's own registry. */
  layerConfig: Layer.unwrapEffect(
    Effect.map(Config.option(Config.string("IMAGE_REGISTRY_URL")), (registryUrl) => Layer.effect(ImageDigests, makeImageDigests({ registryUrl })))
  )
}

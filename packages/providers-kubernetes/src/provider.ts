/**
 * `ComputeProvider` over Kubernetes: an instance is a Pod named after it, its environment in a Secret the Pod owns.
 * Listing reads the Pod cache (one list, then a watch): passes cost the API server nothing. Readiness is the
 * Pod's Ready condition, which the kubelet keeps from the container's probe of `/pool/health`: the
 * `HealthProbe` reads it from the cache instead of calling the instance.
 */
import { CoreV1Api, KubeConfig, type V1Pod, type V1Secret } from "@kubernetes/client-node"
import {
  ComputeProvider,
  type CreatedService,
  type CreateServiceRequest,
  HealthProbe,
  InvalidRequestError,
  type ProviderError,
  retryRemote,
  ServiceInfo,
  TransientError
} from "@warmpool/reconciler"
import { Clock, Context, Duration, Effect, Layer, Ref, type Scope, Stream } from "effect"
import { KubernetesConfig, type KubernetesOptions } from "./config.js"
import { failureOf, type Refusal, refusalOf, toProviderError } from "./errors.js"
import { deployStatusOf, instanceNameOf, isReady, LABELS, MANAGED_SELECTOR, podNameOf, podOf, secretOf, urlOf } from "./manifests.js"
import { makePodCache, type PodChange } from "./pod-cache.js"

/** A change the pool should react to: a Pod of `pool` appeared, changed state or address, or went away. */
export interface PoolPodChange {
  /** The pool label of the Pod (absent on Pods warmpool did not make). */
  readonly pool: string | undefined
  readonly podName: string
  readonly type: PodChange["type"]
  /** Whether the Pod is Ready now (a deleted one is not). */
  readonly ready: boolean
}

/** The connected provider with what the server needs besides `ComputeProvider`. */
export interface KubernetesPlatform {
  readonly compute: ComputeProvider["Type"]
  readonly health: HealthProbe["Type"]
  readonly namespace: string
  /** The Pods' changes as they happen: what the server turns into passes, as Railway's webhooks are. */
  readonly changes: Stream.Stream<PoolPodChange>
}

/** Creates stopped after a refusal: by what, until when. */
interface Stop {
  readonly refusal: Refusal
  readonly message: string
  readonly until: number
}

/** The cluster and namespace: the in-cluster service account, else KUBECONFIG / ~/.kube/config. */
export const defaultKubeConfig = (): KubeConfig => {
  const kubeConfig = new KubeConfig()
  kubeConfig.loadFromDefault()
  return kubeConfig
}

const namespaceOf = (kubeConfig: KubeConfig, options: KubernetesOptions): string =>
  options.namespace ?? kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace ?? "default"

const call = <A>(operation: string, timeout: Duration.Duration, run: () => Promise<A>): Effect.Effect<A, ProviderError> =>
  Effect.tryPromise({ try: run, catch: (cause) => toProviderError(operation, cause) }).pipe(
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new TransientError({ operation, message: "the API server did not answer in time" }) })
  )

/** A call whose 404 / 409 the caller handles itself: the raw failure's status is kept. */
const callRaw = <A>(operation: string, timeout: Duration.Duration, run: () => Promise<A>) =>
  Effect.tryPromise({ try: run, catch: (cause) => ({ status: failureOf(cause).status, error: toProviderError(operation, cause), refusal: refusalOf(failureOf(cause)) }) }).pipe(
    Effect.timeoutFail({ duration: timeout, onTimeout: () => ({ status: 0, error: new TransientError({ operation, message: "the API server did not answer in time" }) as ProviderError, refusal: undefined }) })
  )

const creationTime = (pod: V1Pod): Date => {
  const at = pod.metadata?.creationTimestamp
  return at === undefined ? new Date(0) : new Date(at)
}

export const makePlatform = (options: KubernetesOptions = {}, kubeConfig: KubeConfig = defaultKubeConfig()): Effect.Effect<KubernetesPlatform, never, Scope.Scope> =>
  Effect.gen(function*() {
    const namespace = namespaceOf(kubeConfig, options)
    const api = kubeConfig.makeApiClient(CoreV1Api)
    const timeout = Duration.decode(options.timeout ?? Duration.seconds(20))
    const cooldown = Duration.toMillis(options.refusalCooldown ?? Duration.seconds(60))
    const cache = yield* makePodCache(kubeConfig, api, { namespace, labelSelector: MANAGED_SELECTOR, pageSize: options.pageSize ?? 500, timeout })
    const stops = yield* Ref.make(new Map<string, Stop>())

    const infoOf = (pod: V1Pod) =>
      new ServiceInfo({
        serviceId: pod.metadata?.name ?? "",
        name: instanceNameOf(pod),
        url: urlOf(pod, options, namespace),
        deployStatus: deployStatusOf(pod),
        image: pod.spec?.containers[0]?.image ?? null,
        createdAt: creationTime(pod)
      })

    /** Pods on their way out (a deletion timestamp) are gone as far as the pool is concerned. */
    const livePods = Effect.map(cache.pods, (pods) => pods.filter((pod) => pod.metadata?.deletionTimestamp === undefined))

    const list = (prefix: string) =>
      livePods.pipe(
        Effect.map((pods) => pods.map(infoOf).filter((info) => info.name.startsWith(prefix))),
        Effect.withSpan("KubernetesCompute.list")
      )

    // A quota refusal stops every create of the namespace (the quota is the namespace's); another refusal, the
    // creates of that image (the template is what was refused).
    const stopKey = (refusal: Refusal, request: CreateServiceRequest) => (refusal === "quota" ? "quota" : `image:${request.image}`)

    const checkStopped = (request: CreateServiceRequest) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const all = yield* Ref.get(stops)
        const stop = all.get("quota") ?? all.get(`image:${request.image}`)
        if (stop === undefined || stop.until <= now) return
        return yield* new InvalidRequestError({
          operation: "kubernetes.createPod",
          message: `creates stopped for ${Math.ceil((stop.until - now) / 1000)} s more${stop.refusal === "quota" ? " (or until a Pod is freed)" : ""} after: ${stop.message}`
        })
      })

    const noteRefusal = (refusal: Refusal, request: CreateServiceRequest, error: ProviderError) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        yield* Ref.update(stops, (all) => new Map(all).set(stopKey(refusal, request), { refusal, message: error.message, until: now + cooldown }))
        yield* Effect.logWarning(`kubernetes: creates stopped for ${cooldown / 1000} s: ${error.message}`)
      })

    const createPod = (request: CreateServiceRequest) =>
      callRaw("kubernetes.createPod", timeout, () => api.createNamespacedPod({ namespace, body: podOf(request, options) })).pipe(
        Effect.catchAll((failed) =>
          failed.status === 409
            // There already: a retried or resumed create. Adopt it, if it is this instance's.
            ? Effect.flatMap(call("kubernetes.readPod", timeout, () => api.readNamespacedPod({ namespace, name: podNameOf(request.name) })), (pod) =>
              instanceNameOf(pod) === request.name
                ? Effect.succeed(pod)
                : Effect.fail(new InvalidRequestError({ operation: "kubernetes.createPod", message: `Pod ${pod.metadata?.name} exists and is not instance ${request.name}'s` })))
            : failed.refusal !== undefined
            ? Effect.zipRight(noteRefusal(failed.refusal, request, failed.error), Effect.fail(failed.error))
            : Effect.fail(failed.error)
        ),
        retryRemote()
      )

    /** The instance's Secret, owned by its Pod; one left by an earlier attempt is replaced (credentials are issued anew). */
    const putSecret = (secret: V1Secret) =>
      callRaw("kubernetes.createSecret", timeout, () => api.createNamespacedSecret({ namespace, body: secret })).pipe(
        Effect.catchAll((failed) =>
          failed.status === 409
            ? call("kubernetes.replaceSecret", timeout, () => api.replaceNamespacedSecret({ namespace, name: secret.metadata!.name!, body: secret }))
            : Effect.fail(failed.error)
        ),
        retryRemote(),
        Effect.asVoid
      )

    const create = (request: CreateServiceRequest) =>
      Effect.gen(function*() {
        yield* checkStopped(request)
        const pod = yield* createPod(request)
        yield* putSecret(secretOf(request, { name: pod.metadata!.name!, uid: pod.metadata!.uid! }))
        yield* cache.remember(pod)
        const created: CreatedService = { serviceId: pod.metadata!.name!, url: urlOf(pod, options, namespace), deployStatus: deployStatusOf(pod) }
        return created
      }).pipe(Effect.withSpan("KubernetesCompute.create", { attributes: { name: request.name } }))

    const destroy = (serviceId: string) =>
      callRaw("kubernetes.deletePod", timeout, () => api.deleteNamespacedPod({ namespace, name: serviceId, propagationPolicy: "Background" })).pipe(
        Effect.flatMap((pod) => cache.forget({ name: serviceId, uid: pod.metadata?.uid })),
        Effect.catchAll((failed) => (failed.status === 404 ? cache.forget({ name: serviceId }) : Effect.fail(failed.error))),
        retryRemote(),
        Effect.withSpan("KubernetesCompute.destroy", { attributes: { serviceId } })
      )

    const health = HealthProbe.of({
      check: ({ url }) =>
        Effect.map(Effect.option(livePods), (pods) => {
          const pod = pods._tag === "Some" ? pods.value.find((p) => urlOf(p, options, namespace) === url) : undefined
          return pod === undefined ? "unreachable" as const : isReady(pod) ? "ready" as const : "not-ready" as const
        })
    })

    // A freed Pod may free the quota: creates it stopped may go again.
    yield* Stream.fromPubSub(cache.changes).pipe(
      Stream.filter((change) => change.type === "deleted"),
      Stream.runForEach(() => Ref.update(stops, (all) => {
        if (!all.has("quota")) return all
        const next = new Map(all)
        next.delete("quota")
        return next
      })),
      Effect.forkScoped
    )

    const changes = Stream.fromPubSub(cache.changes).pipe(
      Stream.map((change): PoolPodChange => ({
        pool: change.pod.metadata?.labels?.[LABELS.pool],
        podName: change.pod.metadata?.name ?? "",
        type: change.type,
        ready: change.type !== "deleted" && isReady(change.pod)
      }))
    )

    return { compute: ComputeProvider.of({ list, create, destroy }), health, namespace, changes }
  })

/** The connected Kubernetes provider: its namespace and the Pods' changes (the server turns them into passes). */
export class Kubernetes extends Context.Tag("@warmpool/providers-kubernetes/Kubernetes")<Kubernetes, KubernetesPlatform>() {}

const platformLayer = (options: KubernetesOptions, kubeConfig?: KubeConfig): Layer.Layer<ComputeProvider | HealthProbe | Kubernetes> =>
  Layer.scopedContext(Effect.map(makePlatform(options, kubeConfig), (platform) =>
    Context.make(Kubernetes, platform).pipe(Context.add(ComputeProvider, platform.compute), Context.add(HealthProbe, platform.health))))

export const KubernetesCompute = {
  /** From options and a kubeconfig (library users, tests); the default kubeconfig when none is given. */
  layer: platformLayer,
  /** From KUBE_* environment variables and the default kubeconfig. */
  layerConfig: Layer.unwrapEffect(Effect.map(KubernetesConfig, (options) => platformLayer(options)))
}

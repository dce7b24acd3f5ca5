/**
 * A kubelet for tests, working through the API as a node's kubelet does (so it serves the emulator and a real
 * API server alike): it starts a Pod only once the Secret its environment refers to is there, resolves that
 * environment, optionally runs something for the container, and reports the Pod Running and Ready with an IP.
 */
import { CoreV1Api, KubeConfig, type V1Pod } from "@kubernetes/client-node"
import { Effect } from "effect"

export interface KubeletOptions {
  /** Runs the Pod's container with its resolved environment; answers the Pod's IP. Default: nothing runs, IPs 10.244.0.x. */
  readonly run?: (pod: V1Pod, env: Readonly<Record<string, string>>) => Promise<string>
}

export const makeKubelet = (kubeconfig: string, namespace: string, options: KubeletOptions = {}) => {
  const kubeConfig = new KubeConfig()
  kubeConfig.loadFromString(kubeconfig)
  const api = kubeConfig.makeApiClient(CoreV1Api)
  let address = 10

  /** The container's environment, as the kubelet resolves it: values, and `secretKeyRef`s read from their Secrets. */
  const environment = async (pod: V1Pod): Promise<Record<string, string>> => {
    const env: Record<string, string> = {}
    for (const variable of pod.spec?.containers[0]?.env ?? []) {
      const ref = variable.valueFrom?.secretKeyRef
      if (ref === undefined) env[variable.name] = variable.value ?? ""
      else {
        // A missing Secret fails the start (CreateContainerConfigError): the Pod waits, and is tried again.
        const secret = await api.readNamespacedSecret({ namespace, name: ref.name! })
        env[variable.name] = Buffer.from(secret.data?.[ref.key] ?? "", "base64").toString("utf8")
      }
    }
    return env
  }

  /** Starts the Pod: Running, an IP, Ready. Fails while its Secret is missing. */
  const start = (name: string) =>
    Effect.tryPromise(async () => {
      const pod = await api.readNamespacedPod({ namespace, name })
      const env = await environment(pod)
      const podIP = options.run !== undefined ? await options.run(pod, env) : `10.244.0.${address++}`
      const now = new Date()
      const body: V1Pod = {
        ...pod,
        status: {
          phase: "Running",
          podIP,
          podIPs: [{ ip: podIP }],
          hostIP: "10.0.0.1",
          startTime: now,
          conditions: ["PodScheduled", "Initialized", "ContainersReady", "Ready"].map((type) => ({ type, status: "True", lastTransitionTime: now })),
          containerStatuses: (pod.spec?.containers ?? []).map((c) => ({
            name: c.name,
            image: c.image ?? "",
            imageID: "",
            ready: true,
            started: true,
            restartCount: 0,
            state: { running: { startedAt: now } }
          }))
        }
      }
      await api.replaceNamespacedPodStatus({ namespace, name, body })
      return podIP
    })

  /** Starts every Pod of the namespace that is not running yet (those whose Secret is missing wait); their names. */
  const startAll = Effect.promise(() => api.listNamespacedPod({ namespace })).pipe(
    Effect.map((list) => list.items.filter((p) => p.status?.phase !== "Running" && p.metadata?.deletionTimestamp === undefined).map((p) => p.metadata!.name!)),
    Effect.flatMap((names) => Effect.filter(names, (name) => Effect.isSuccess(start(name)), { concurrency: 4 }))
  )
  return { api, start, startAll }
}

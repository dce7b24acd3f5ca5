/**
 * What the provider writes and how it reads what it finds: the Pod and Secret of an instance, a Pod's deploy
 * status and URL. Pure functions, no API calls.
 */
import type { V1Pod, V1Secret } from "@kubernetes/client-node"
import type { CreateServiceRequest } from "@warmpool/reconciler"
import { createHash } from "node:crypto"
import { DEFAULT_URL_TEMPLATE, type KubernetesOptions } from "./config.js"

export const LABELS = {
  managedBy: "app.kubernetes.io/managed-by",
  pool: "warmpool.dev/pool",
  instance: "warmpool.dev/instance",
  templateHash: "warmpool.dev/template-hash"
} as const

/** The instance's own name (any characters), kept where Kubernetes' naming rules do not reach. */
export const INSTANCE_NAME_ANNOTATION = "warmpool.dev/instance-name"

/** What the provider lists and watches: every Pod it made, whatever the pool. */
export const MANAGED_SELECTOR = `${LABELS.managedBy}=warmpool`

export const CONTAINER_NAME = "runtime"
export const HEALTH_PATH = "/pool/health"

/**
 * The Pod's name for an instance name: a DNS label (lowercase letters, digits, `-`, at most 63). Instance ids have
 * capitals and `_`, so a name that does not fit is lowered and given a digest of the original: two names never
 * share a Pod, and the same name always finds its Pod again (creates are idempotent by name).
 */
export const podNameOf = (instanceName: string): string => {
  const lowered = instanceName.toLowerCase().replace(/[^a-z0-9-]/g, "-").replace(/^-+|-+$/g, "")
  if (lowered === instanceName && lowered.length <= 63 && lowered !== "") return lowered
  const digest = createHash("sha256").update(instanceName).digest("hex").slice(0, 8)
  return `${lowered.slice(0, 63 - 9).replace(/-+$/g, "")}-${digest}`.replace(/^-+/, "")
}

/** A label value: at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends (or empty). */
export const labelValue = (value: string): string =>
  value.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 63).replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "")

/** The labels of an instance's Pod and Secret. */
export const labelsOf = (request: CreateServiceRequest): Record<string, string> => ({
  [LABELS.managedBy]: "warmpool",
  [LABELS.instance]: podNameOf(request.name),
  ...(request.pool === undefined ? {} : { [LABELS.pool]: labelValue(request.pool) }),
  ...(request.templateHash === undefined ? {} : { [LABELS.templateHash]: labelValue(request.templateHash) })
})

export const portOf = (request: CreateServiceRequest, options: KubernetesOptions): number => {
  const fromEnv = Number(request.env.PORT)
  return Number.isInteger(fromEnv) && fromEnv > 0 && fromEnv < 65536 ? fromEnv : options.port ?? 8080
}

/**
 * The instance's Pod. Every variable of its environment comes from the instance's Secret (`secretKeyRef`): the Pod
 * spec names the variables, never their values. The kubelet probes `/pool/health`; its answer is the Pod's Ready
 * condition. Until the Secret exists the container waits (CreateContainerConfigError), then starts.
 */
export const podOf = (request: CreateServiceRequest, options: KubernetesOptions): V1Pod => {
  const name = podNameOf(request.name)
  const port = portOf(request, options)
  const resources = options.resources
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, labels: labelsOf(request), annotations: { [INSTANCE_NAME_ANNOTATION]: request.name } },
    spec: {
      restartPolicy: "Always",
      // Agents have no business with the cluster's API, unless given a service account of their own.
      ...(options.serviceAccountName === undefined ? { automountServiceAccountToken: false } : { serviceAccountName: options.serviceAccountName }),
      ...(options.imagePullSecrets === undefined || options.imagePullSecrets.length === 0
        ? {}
        : { imagePullSecrets: options.imagePullSecrets.map((secret) => ({ name: secret })) }),
      containers: [{
        name: CONTAINER_NAME,
        image: request.image,
        ports: [{ name: "http", containerPort: port, protocol: "TCP" }],
        env: Object.keys(request.env).sort().map((key) => ({ name: key, valueFrom: { secretKeyRef: { name, key } } })),
        ...(resources === undefined ? {} : {
          resources: {
            ...(resources.requests === undefined ? {} : { requests: { ...resources.requests } }),
            ...(resources.limits === undefined ? {} : { limits: { ...resources.limits } })
          }
        }),
        readinessProbe: { httpGet: { path: HEALTH_PATH, port: "http" }, periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 3 }
      }]
    }
  }
}

/** The instance's Secret: its whole environment, owned by its Pod (deleting the Pod deletes it). */
export const secretOf = (request: CreateServiceRequest, owner: { readonly name: string; readonly uid: string }): V1Secret => ({
  apiVersion: "v1",
  kind: "Secret",
  type: "Opaque",
  metadata: {
    name: owner.name,
    labels: labelsOf(request),
    ownerReferences: [{ apiVersion: "v1", kind: "Pod", name: owner.name, uid: owner.uid }]
  },
  data: Object.fromEntries(Object.entries(request.env).map(([key, value]) => [key, Buffer.from(value, "utf8").toString("base64")]))
})

/** The instance name a Pod stands for: its annotation, or (a Pod someone else made) its own name. */
export const instanceNameOf = (pod: V1Pod): string =>
  pod.metadata?.annotations?.[INSTANCE_NAME_ANNOTATION] ?? pod.metadata?.name ?? ""

export const isReady = (pod: V1Pod): boolean =>
  pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false

/** Waiting reasons after which the container will not come up by itself. */
const hopeless = new Set(["InvalidImageName", "ErrImageNeverPull"])

/**
 * A Pod's state in the platform vocabulary the plan reads (`DeployStatus`): Ready → SUCCESS; failed, or a crash
 * loop → FAILED / CRASHED; not yet scheduled → QUEUED; on its way up → DEPLOYING. A container waiting for its
 * Secret (CreateContainerConfigError) is on its way up: the Secret follows the Pod.
 */
export const deployStatusOf = (pod: V1Pod): string => {
  const phase = pod.status?.phase
  if (phase === "Failed") return "FAILED"
  if (phase === "Succeeded") return "REMOVED"
  const waiting = (pod.status?.containerStatuses ?? []).map((c) => c.state?.waiting?.reason).filter((r) => r !== undefined)
  if (waiting.includes("CrashLoopBackOff")) return "CRASHED"
  if (waiting.some((r) => hopeless.has(r))) return "FAILED"
  if (isReady(pod)) return "SUCCESS"
  const scheduled = pod.spec?.nodeName !== undefined || pod.status?.conditions?.some((c) => c.type === "PodScheduled" && c.status === "True")
  return scheduled ? "DEPLOYING" : "QUEUED"
}

/** The Pod's URL, when it has one yet (the default template needs the Pod's IP). */
export const urlOf = (pod: V1Pod, options: KubernetesOptions, namespace: string): string | null => {
  const template = options.urlTemplate ?? DEFAULT_URL_TEMPLATE
  const podIP = pod.status?.podIP
  if (template.includes("{podIP}") && (podIP === undefined || podIP === "")) return null
  const port = pod.spec?.containers.find((c) => c.name === CONTAINER_NAME)?.ports?.[0]?.containerPort ?? options.port ?? 8080
  const host = podIP !== undefined && podIP.includes(":") ? `[${podIP}]` : podIP ?? ""
  return template
    .replaceAll("{podIP}", host)
    .replaceAll("{port}", String(port))
    .replaceAll("{name}", pod.metadata?.name ?? "")
    .replaceAll("{namespace}", namespace)
}

import { Config, ConfigError, type Duration, Either, Option } from "effect"

/** What the pods' container asks of the node: `requests` and `limits`, e.g. `{ cpu: "250m", memory: "512Mi" }`. */
export interface ContainerResources {
  readonly requests?: Readonly<Record<string, string>>
  readonly limits?: Readonly<Record<string, string>>
}

export interface KubernetesOptions {
  /** Where the pool's Pods and Secrets live. Default: the kubeconfig context's namespace, else `default`. */
  readonly namespace?: string
  /**
   * The URL a claim returns. `{podIP}`, `{port}`, `{name}` (the Pod's) and `{namespace}` are filled in. Default
   * `http://{podIP}:{port}` (reachable inside the cluster); a template without `{podIP}` must name the Pod.
   */
  readonly urlTemplate?: string
  /** The container's port, when the instance's env has no `PORT`. Default 8080. */
  readonly port?: number
  readonly resources?: ContainerResources
  /** The Pods' service account (its token mounted as the cluster's settings say); by default none, and no token mounted. */
  readonly serviceAccountName?: string
  /** Image pull secrets the Pods use (names of Secrets in the namespace). */
  readonly imagePullSecrets?: ReadonlyArray<string>
  /** Pods per page of the initial list (and of every relist). Default 500. */
  readonly pageSize?: number
  /** Per request (watches excepted). Default 20 s. */
  readonly timeout?: Duration.DurationInput
  /** How long creates stay stopped after a quota or admission refusal (a freed Pod ends a quota's earlier). Default 60 s. */
  readonly refusalCooldown?: Duration.DurationInput
}

export const DEFAULT_URL_TEMPLATE = "http://{podIP}:{port}"

const placeholders = ["podIP", "port", "name", "namespace"] as const

/** What is wrong with a URL template, if anything. */
export const urlTemplateProblem = (template: string): string | undefined => {
  const unknown = [...template.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]!).filter((p) => !(placeholders as ReadonlyArray<string>).includes(p))
  if (unknown.length > 0) return `unknown placeholder(s) ${unknown.map((p) => `{${p}}`).join(", ")}; use ${placeholders.map((p) => `{${p}}`).join(", ")}`
  if (!/^https?:\/\//.test(template)) return "must start with http:// or https://"
  // Every instance needs its own URL: the health of a Pod is found by it.
  if (!template.includes("{podIP}") && !template.includes("{name}")) return "must contain {podIP} or {name}, so that every Pod has its own URL"
  return undefined
}

const resourceList = (prefix: string) =>
  Config.all({
    cpu: Config.option(Config.nonEmptyString(`${prefix}_CPU`)),
    memory: Config.option(Config.nonEmptyString(`${prefix}_MEMORY`))
  }).pipe(Config.map(({ cpu, memory }) => ({
    ...Option.match(cpu, { onNone: () => ({}), onSome: (v) => ({ cpu: v }) }),
    ...Option.match(memory, { onNone: () => ({}), onSome: (v) => ({ memory: v }) })
  })))

const optional = <A>(config: Config.Config<Option.Option<A>>, key: string) =>
  Config.map(config, Option.match({ onNone: () => ({}), onSome: (value: A) => ({ [key]: value }) }))

/**
 * KUBE_NAMESPACE, KUBE_INSTANCE_URL_TEMPLATE, KUBE_INSTANCE_PORT, KUBE_REQUEST_CPU / KUBE_REQUEST_MEMORY,
 * KUBE_LIMIT_CPU / KUBE_LIMIT_MEMORY, KUBE_SERVICE_ACCOUNT, KUBE_IMAGE_PULL_SECRETS (comma-separated),
 * KUBE_PAGE_SIZE, KUBE_TIMEOUT. The cluster and credentials: in-cluster service account, else KUBECONFIG or
 * ~/.kube/config.
 */
export const KubernetesConfig: Config.Config<KubernetesOptions> = Config.all([
  optional(Config.option(Config.nonEmptyString("KUBE_NAMESPACE")), "namespace"),
  optional(Config.option(Config.string("KUBE_INSTANCE_URL_TEMPLATE").pipe(
    Config.mapOrFail((template) => {
      const problem = urlTemplateProblem(template)
      return problem === undefined ? Either.right(template) : Either.left(ConfigError.InvalidData([], problem))
    })
  )), "urlTemplate"),
  optional(Config.option(Config.port("KUBE_INSTANCE_PORT")), "port"),
  optional(Config.option(Config.nonEmptyString("KUBE_SERVICE_ACCOUNT")), "serviceAccountName"),
  optional(Config.option(Config.nonEmptyString("KUBE_IMAGE_PULL_SECRETS").pipe(
    Config.map((names) => names.split(",").map((n) => n.trim()).filter((n) => n !== ""))
  )), "imagePullSecrets"),
  optional(Config.option(Config.integer("KUBE_PAGE_SIZE").pipe(Config.validate({ message: "must be a whole number ≥ 1", validation: (n) => n >= 1 }))), "pageSize"),
  optional(Config.option(Config.duration("KUBE_TIMEOUT")), "timeout"),
  Config.all({ requests: resourceList("KUBE_REQUEST"), limits: resourceList("KUBE_LIMIT") }).pipe(
    Config.map(({ limits, requests }) => (Object.keys(requests).length + Object.keys(limits).length === 0 ? {} : { resources: { requests, limits } }))
  )
]).pipe(Config.map((parts): KubernetesOptions => Object.assign({}, ...parts)))

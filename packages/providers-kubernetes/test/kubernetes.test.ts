/**
 * One suite, run against the emulator always and against a real kube-apiserver (with etcd, no kubelet) when its
 * binaries are found (scripts/kube/build-apiserver.sh, KUBEBUILDER_ASSETS or PATH): the compute-provider
 * conformance suite, and a pool end to end — fill, claim, a surge-first rollout, a dropped watch — with the test
 * playing the kubelet. Behaviour only the emulator can stage (410 after compaction, 429, a quota) is tested there.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { CoreV1Api } from "@kubernetes/client-node"
import { ComputeProvider, Controller, type Instance, LocalIncarnations, PoolSpec, SingleLeader } from "@warmpool/reconciler"
import { computeProviderConformance } from "@warmpool/reconciler/conformance"
import { InMemoryCredentials, InMemoryRuntime, InMemoryStore, InMemoryStoreControl } from "@warmpool/reconciler/testing"
import { Context, Effect, Exit, Layer, Schedule, Scope } from "effect"
import { Deployment } from "kubernetes-models/apps/v1"
import { Role, RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1"
import { Service, ServiceAccount } from "kubernetes-models/v1"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { parse as parseYaml } from "yaml"
import { failureOf, KubernetesCompute, type KubernetesOptions, LABELS } from "../src/index.js"
import { apiServerCluster, emulatorCluster, findApiServerAssets, kubeConfigFrom, makeKubelet, type TestCluster } from "./support/clusters.js"

const assets = findApiServerAssets()
if (assets === undefined) {
  console.log("kubernetes: no kube-apiserver/etcd found (scripts/kube/build-apiserver.sh, KUBEBUILDER_ASSETS or PATH): the real-server variant is skipped")
}

/** A cluster started once for a describe block, shared by its tests. */
const sharedCluster = (start: Effect.Effect<TestCluster, unknown, Scope.Scope>) => {
  const scope = Effect.runSync(Scope.make())
  let cluster: TestCluster | undefined
  beforeAll(async () => {
    cluster = await Effect.runPromise(Scope.extend(start, scope))
  }, 180_000)
  afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))
  return Effect.suspend(() => (cluster === undefined ? Effect.dieMessage("the cluster did not start") : Effect.succeed(cluster)))
}

const providerLayer = (cluster: Effect.Effect<TestCluster>, namespace?: string) =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const c = yield* cluster
    const ns = namespace ?? (yield* c.namespace)
    return KubernetesCompute.layer({ namespace: ns }, kubeConfigFrom(c.kubeconfig))
  }))

const spec = (image: string) =>
  new PoolSpec({
    name: "agents",
    namePrefix: "agent-",
    minIdle: 2,
    maxTotal: 8,
    maxSurge: 1,
    // A Pod missing from the listing is an orphan after this long (the default minute is for slow platforms).
    listingGraceMs: 1_000,
    template: { image, env: { SHARED_SETTING: "shared-setting-value", PORT: "8080" } }
  })

const rowsOf = Effect.flatMap(InMemoryStoreControl, (c) => c.rows)

/** Runs passes (the kubelet starting what the last one made) until `done` holds of the rows; real time. */
const passUntil = (
  controller: Controller["Type"],
  kubelet: ReturnType<typeof makeKubelet>,
  done: (rows: ReadonlyArray<Instance>) => boolean,
  invariant: (rows: ReadonlyArray<Instance>) => void = () => {}
) =>
  Effect.gen(function*() {
    yield* controller.runPass
    yield* kubelet.startAll
    const rows = yield* rowsOf
    invariant(rows)
    if (!done(rows)) return yield* Effect.fail("not yet" as const)
    return rows
  }).pipe(Effect.retry(Schedule.spaced("150 millis").pipe(Schedule.upTo("45 seconds"))))

const poolServices = (cluster: TestCluster, namespace: string) =>
  Layer.mergeAll(
    KubernetesCompute.layer({ namespace }, kubeConfigFrom(cluster.kubeconfig)),
    InMemoryStore.layer,
    InMemoryCredentials.layer,
    InMemoryRuntime.layer(),
    SingleLeader,
    LocalIncarnations.layer()
  )

const suite = (name: TestCluster["name"], start: Effect.Effect<TestCluster, unknown, Scope.Scope>) =>
  describe(`Kubernetes provider on ${name}`, () => {
    const cluster = sharedCluster(start)

    computeProviderConformance(`kubernetes (${name})`, providerLayer(cluster), { env: { A: "1", PORT: "8080" } })

    it.live("a pool end to end: fills, claims, rolls out a new image surge-first, and recovers from a dropped watch; secrets only in Secrets", () =>
      Effect.gen(function*() {
        const c = yield* cluster
        const namespace = yield* c.namespace
        const kubelet = makeKubelet(c.kubeletKubeconfig, namespace)
        const services = yield* Layer.build(poolServices(c, namespace))
        const inPool = <A, E>(effect: Effect.Effect<A, E, any>) => Effect.provide(effect, services) as Effect.Effect<A, E>

        // Fill.
        const v1 = yield* inPool(Controller.make(spec("runtime:v1"), { background: false }))
        const filled = yield* inPool(passUntil(v1, kubelet, (rows) => rows.filter((r) => r.status === "idle").length === 2))
        const idle = filled.filter((r) => r.status === "idle")
        for (const row of idle) expect(row.url).toMatch(/^http:\/\/10\.244\.0\.\d+:8080$/)

        // The Pods: labelled, their environment by reference only; the values in Secrets the Pods own.
        const pods = (yield* Effect.promise(() => kubelet.api.listNamespacedPod({ namespace }))).items
        expect(pods).toHaveLength(2)
        for (const pod of pods) {
          expect(pod.metadata?.labels).toMatchObject({ [LABELS.managedBy]: "warmpool", [LABELS.pool]: "agents", [LABELS.templateHash]: expect.stringMatching(/^[0-9a-f]{16}$/) })
          const spec = JSON.stringify(pod.spec)
          expect(spec).not.toContain("shared-setting-value")
          expect(spec).not.toMatch(/secret-agent-/) // the in-memory credentials' per-instance secret
          const env = pod.spec!.containers[0]!.env!
          expect(env.map((e) => e.name).sort()).toEqual(["INSTANCE_SECRET", "PORT", "SHARED_SETTING"])
          expect(env.every((e) => e.value === undefined && e.valueFrom?.secretKeyRef?.name === pod.metadata!.name)).toBe(true)
          expect(pod.spec!.containers[0]!.readinessProbe?.httpGet?.path).toBe("/pool/health")
          const secret = yield* Effect.promise(() => kubelet.api.readNamespacedSecret({ namespace, name: pod.metadata!.name! }))
          expect(secret.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: "Pod", name: pod.metadata!.name, uid: pod.metadata!.uid })])
          expect(Buffer.from(secret.data!.SHARED_SETTING!, "base64").toString()).toBe("shared-setting-value")
        }

        // Claim: the oldest idle instance, then a backfill.
        const claimed = yield* inPool(v1.claim({ label: "first" }))
        expect(claimed.instance.status).toBe("claimed")
        yield* inPool(passUntil(v1, kubelet, (rows) => rows.filter((r) => r.status === "idle").length === 2))

        // Rollout to v2: surge-first (idle never below minIdle once full), the claimed instance untouched.
        const v2 = yield* inPool(Controller.make(spec("runtime:v2"), { background: false }))
        const rolled = yield* inPool(passUntil(
          v2,
          kubelet,
          (rows) => rows.filter((r) => r.status === "idle").length === 2 && rows.filter((r) => r.status !== "claimed").every((r) => r.runtimeImage === "runtime:v2"),
          (rows) => {
            expect(rows.filter((r) => r.status === "idle").length).toBeGreaterThanOrEqual(2)
            expect(rows.find((r) => r.id === claimed.instance.id)?.status).toBe("claimed")
          }
        ))
        expect(rolled.find((r) => r.id === claimed.instance.id)?.runtimeImage).toBe("runtime:v1")
        const images = (yield* Effect.promise(() => kubelet.api.listNamespacedPod({ namespace }))).items
          .filter((p) => p.metadata?.deletionTimestamp === undefined).map((p) => p.spec!.containers[0]!.image).sort()
        expect(images).toEqual(["runtime:v1", "runtime:v2", "runtime:v2"])

        // A dropped watch: while it is down an idle Pod disappears; the provider resumes and the pool replaces it.
        const victim = rolled.find((r) => r.status === "idle")!
        yield* c.dropWatches
        c.emulator?.compact() // on the emulator the versions are gone too: the watch gets 410 and the provider lists again
        yield* Effect.promise(() => kubelet.api.deleteNamespacedPod({ namespace, name: victim.serviceId!, gracePeriodSeconds: 0 }))
        yield* inPool(passUntil(v2, kubelet, (rows) => !rows.some((r) => r.id === victim.id) && rows.filter((r) => r.status === "idle").length === 2))
        if (c.emulator !== undefined) {
          const lists = c.emulator.calls().filter((call) => call.user === "warmpool" && call.verb === "list" && call.resource === "pods")
          expect(lists.length).toBeGreaterThanOrEqual(2) // the first list, and the relist after 410
        }
      }).pipe(Effect.scoped), { timeout: 150_000 })
  })

suite("emulator", emulatorCluster())
if (assets !== undefined) suite("kube-apiserver", apiServerCluster(assets))
else describe.skip("Kubernetes provider on kube-apiserver (binaries not found)", () => it("runs when kube-apiserver and etcd are found", () => {}))

describe("Kubernetes provider, on the emulator only", () => {
  it.live("a steady pool makes no calls at all: one list at start, then only the watch", () =>
    Effect.gen(function*() {
      const c = yield* emulatorCluster()
      const namespace = yield* c.namespace
      const kubelet = makeKubelet(c.kubeletKubeconfig, namespace)
      const services = yield* Layer.build(poolServices(c, namespace))
      const controller = yield* Controller.make(spec("runtime:v1"), { background: false }).pipe(Effect.provide(services))
      yield* passUntil(controller, kubelet, (rows) => rows.filter((r) => r.status === "idle").length === 2).pipe(Effect.provide(services))
      const before = c.emulator!.calls().filter((call) => call.user === "warmpool").length
      yield* Effect.repeatN(controller.runPass, 19)
      const after = c.emulator!.calls().filter((call) => call.user === "warmpool")
      expect(after.length - before).toBe(0)
      expect(after.filter((call) => call.verb === "list")).toHaveLength(1)
      expect(after.filter((call) => call.verb === "watch")).toHaveLength(1)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  const providerOn = (c: TestCluster, namespace: string, options: Omit<KubernetesOptions, "namespace"> = {}) =>
    Effect.map(Layer.build(KubernetesCompute.layer({ namespace, ...options }, kubeConfigFrom(c.kubeconfig))), Context.get(ComputeProvider))
  const providerCalls = (c: TestCluster, verb: string, resource = "pods") =>
    c.emulator!.calls().filter((call) => call.user === "warmpool" && call.verb === verb && call.resource === resource).length
  const request = (name: string, image = "runtime:v1") => ({ name, image, env: { PORT: "8080" } })

  it.live("a 429 is waited out for its Retry-After, then the create goes through", () =>
    Effect.gen(function*() {
      const c = yield* emulatorCluster()
      const compute = yield* providerOn(c, "ns")
      c.emulator!.inject({ status: 429, reason: "TooManyRequests", message: "too many requests", retryAfterSeconds: 1 }, { verb: "create", resource: "pods" })
      const started = Date.now()
      yield* compute.create(request("agent-a"))
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_000)
      expect(providerCalls(c, "create")).toBe(2)
    }).pipe(Effect.scoped))

  it.live("a ResourceQuota refusal says what was refused and stops creates, without calls, until a Pod is freed", () =>
    Effect.gen(function*() {
      const c = yield* emulatorCluster({ podQuota: 1 })
      const compute = yield* providerOn(c, "ns")
      const first = yield* compute.create(request("agent-a"))
      const refused = yield* Effect.flip(compute.create(request("agent-b")))
      expect(refused._tag).toBe("InvalidRequestError")
      expect(refused.message).toMatch(/HTTP 403 refused by a ResourceQuota: .*exceeded quota/)
      const calls = providerCalls(c, "create")
      const stopped = yield* Effect.flip(compute.create(request("agent-c")))
      expect(stopped.message).toMatch(/creates stopped .* after: HTTP 403 refused by a ResourceQuota/)
      expect(providerCalls(c, "create")).toBe(calls)
      // A freed Pod (its DELETED event) lets creates go again.
      yield* compute.destroy(first.serviceId)
      yield* compute.create(request("agent-c")).pipe(Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("5 seconds"))))
      expect(c.emulator!.pods("ns").map((p) => p.metadata.annotations["warmpool.dev/instance-name"])).toEqual(["agent-c"])
    }).pipe(Effect.scoped))

  it.live("an invalid object (422) stops the creates of that image only", () =>
    Effect.gen(function*() {
      const c = yield* emulatorCluster()
      const compute = yield* providerOn(c, "ns")
      c.emulator!.inject({ status: 422, reason: "Invalid", message: "Pod \"agent-a\" is invalid: spec.containers[0].image: Required value" }, { verb: "create", resource: "pods" })
      const refused = yield* Effect.flip(compute.create(request("agent-a", "broken:v1")))
      expect(refused.message).toMatch(/HTTP 422 refused as invalid: .*image: Required value/)
      const calls = providerCalls(c, "create")
      expect((yield* Effect.flip(compute.create(request("agent-b", "broken:v1")))).message).toMatch(/creates stopped/)
      expect(providerCalls(c, "create")).toBe(calls)
      yield* compute.create(request("agent-c", "fine:v1"))
      expect(providerCalls(c, "create")).toBe(calls + 1)
    }).pipe(Effect.scoped))

  it.live("while the watch cannot resume, the listing fails (nothing destructive follows) until it runs again", () =>
    Effect.gen(function*() {
      const c = yield* emulatorCluster()
      const compute = yield* providerOn(c, "ns")
      yield* compute.create(request("agent-a"))
      c.emulator!.inject({ status: 500, reason: "InternalError", message: "etcd is down" }, { verb: "watch", times: 5 })
      yield* c.dropWatches
      // A watch the server ended leaves the cache current; the failed resumption right after makes it unknown.
      const failed = yield* Effect.flip(compute.list("agent-")).pipe(Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("5 seconds"))))
      expect(failed._tag).toBe("TransientError")
      expect(failed.message).toMatch(/the Pods are not known yet: the watch failed/)
      const listed = yield* compute.list("agent-").pipe(Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo("20 seconds"))))
      expect(listed.map((s) => s.name)).toEqual(["agent-a"])
      expect(providerCalls(c, "list")).toBe(1) // resumed from its version: no relist
    }).pipe(Effect.scoped), { timeout: 40_000 })

  it.live("the first list pages with limit and continue; every page is one request", () =>
    Effect.gen(function*() {
      const c = yield* emulatorCluster()
      const other = yield* providerOn(c, "ns")
      yield* Effect.forEach(["a", "b", "c", "d", "e"], (n) => other.create(request(`agent-${n}`)), { discard: true })
      const before = providerCalls(c, "list")
      const compute = yield* providerOn(c, "ns", { pageSize: 2 })
      expect((yield* compute.list("agent-")).map((s) => s.name).sort()).toEqual(["agent-a", "agent-b", "agent-c", "agent-d", "agent-e"])
      expect(providerCalls(c, "list") - before).toBe(3)
    }).pipe(Effect.scoped))

  it.live("the emulator refuses what Kubernetes' schemas refuse (422 Invalid), and stores nothing", () =>
    Effect.gen(function*() {
      const c = yield* emulatorCluster()
      const api = kubeConfigFrom(c.kubeconfig).makeApiClient(CoreV1Api)
      const error = yield* Effect.flip(Effect.tryPromise(() =>
        api.createNamespacedPod({ namespace: "ns", body: { metadata: { name: "bad" }, spec: { containers: [{ name: "c", image: 5 as unknown as string }] } } })
      ))
      expect(failureOf(error.error)).toMatchObject({ status: 422, reason: "Invalid", message: expect.stringMatching(/image must be string/) })
      const badName = yield* Effect.flip(Effect.tryPromise(() =>
        api.createNamespacedPod({ namespace: "ns", body: { metadata: { name: "Not_A_Name" }, spec: { containers: [{ name: "c", image: "x" }] } } })
      ))
      expect(failureOf(badName.error)).toMatchObject({ status: 422, message: expect.stringMatching(/RFC 1123/) })
      expect(c.emulator!.pods("ns")).toEqual([])
    }).pipe(Effect.scoped))

  it.live("deleting a Pod collects the Secret it owns (garbage collection, in the background)", () =>
    Effect.gen(function*() {
      const c = yield* emulatorCluster()
      const compute = yield* providerOn(c, "ns")
      const created = yield* compute.create(request("agent-a"))
      expect(c.emulator!.secrets("ns").map((s) => s.metadata.name)).toEqual([created.serviceId])
      yield* compute.destroy(created.serviceId)
      yield* Effect.sleep("50 millis")
      expect(c.emulator!.secrets("ns")).toEqual([])
    }).pipe(Effect.scoped))
})

describe("deploy/kubernetes", () => {
  const dir = join(import.meta.dirname, "../../../deploy/kubernetes")
  const manifests = readdirSync(dir).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml").map((f) => parseYaml(readFileSync(join(dir, f), "utf8")))
  const models: Record<string, { new(data: any): { validate: () => void } }> = { ServiceAccount, Role, RoleBinding, Deployment, Service }

  it("every manifest is valid by Kubernetes' schemas; the Deployment runs 2 replicas with the provider", () => {
    expect(manifests.map((m) => m.kind).sort()).toEqual(["Deployment", "Role", "RoleBinding", "Service", "ServiceAccount"])
    for (const manifest of manifests) expect(() => new models[manifest.kind]!(manifest).validate()).not.toThrow()
    const deployment = manifests.find((m) => m.kind === "Deployment")
    expect(deployment.spec.replicas).toBe(2)
    expect(deployment.spec.template.spec.serviceAccountName).toBe("warmpool")
    expect(deployment.spec.template.spec.containers[0].env).toEqual(expect.arrayContaining([{ name: "POOL_PROVIDER", value: "kubernetes" }]))
  })

  it.live("the Role grants exactly the calls the provider makes", () =>
    Effect.gen(function*() {
      const c = yield* emulatorCluster()
      const compute = yield* Effect.map(Layer.build(KubernetesCompute.layer({ namespace: "ns" }, kubeConfigFrom(c.kubeconfig))), Context.get(ComputeProvider))
      const made = yield* compute.create({ name: "agent-a", image: "runtime:v1", env: { PORT: "8080" } })
      yield* compute.create({ name: "agent-a", image: "runtime:v1", env: { PORT: "8080" } }) // adopts: get, then the Secret updated
      yield* compute.list("agent-")
      yield* compute.destroy(made.serviceId)
      const used = new Set(c.emulator!.calls().filter((call) => call.user === "warmpool").map((call) => `${call.resource}:${call.verb}`))
      const role = manifests.find((m) => m.kind === "Role")
      const granted = new Set(role.rules.flatMap((rule: { resources: Array<string>; verbs: Array<string> }) => rule.resources.flatMap((r) => rule.verbs.map((v) => `${r}:${v}`))))
      expect([...used].sort()).toEqual([...granted].sort())
    }).pipe(Effect.scoped))
})

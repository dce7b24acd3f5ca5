/** The pure half of the provider: names, manifests, how a Pod's state reads, the URL template and its config. */
import type { V1Pod } from "@kubernetes/client-node"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either } from "effect"
import { deployStatusOf, KubernetesConfig, podNameOf, podOf, urlOf } from "../src/index.js"

const pod = (status: NonNullable<V1Pod["status"]>, spec: Partial<NonNullable<V1Pod["spec"]>> = {}): V1Pod => ({
  metadata: { name: "agent-a" },
  spec: { containers: [{ name: "runtime", image: "img", ports: [{ containerPort: 8080 }] }], ...spec },
  status
})

describe("Pod names", () => {
  it("keep a DNS label as it is; give any other name a lowered form and a digest, so two names never share a Pod", () => {
    expect(podNameOf("convos-agent-abc123")).toBe("convos-agent-abc123")
    const upper = podNameOf("convos-agent-aB_x-9")
    const lower = podNameOf("convos-agent-ab-x-9")
    expect(upper).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)
    expect(upper).not.toBe(lower)
    expect(podNameOf("convos-agent-aB_x-9")).toBe(upper)
    expect(podNameOf(`x${"A".repeat(100)}`).length).toBeLessThanOrEqual(63)
  })
})

describe("a Pod's deploy status", () => {
  it("reads Ready as SUCCESS, a crash loop as CRASHED, a failed Pod or a hopeless image as FAILED", () => {
    expect(deployStatusOf(pod({ phase: "Running", conditions: [{ type: "Ready", status: "True" }] }))).toBe("SUCCESS")
    expect(deployStatusOf(pod({ phase: "Running", containerStatuses: [{ name: "runtime", image: "img", imageID: "", ready: false, restartCount: 4, state: { waiting: { reason: "CrashLoopBackOff" } } }] }))).toBe("CRASHED")
    expect(deployStatusOf(pod({ phase: "Failed" }))).toBe("FAILED")
    expect(deployStatusOf(pod({ phase: "Pending", containerStatuses: [{ name: "runtime", image: "img", imageID: "", ready: false, restartCount: 0, state: { waiting: { reason: "InvalidImageName" } } }] }))).toBe("FAILED")
  })

  it("counts a container waiting for its Secret as on its way up, and an unscheduled Pod as queued", () => {
    expect(deployStatusOf(pod({ phase: "Pending", containerStatuses: [{ name: "runtime", image: "img", imageID: "", ready: false, restartCount: 0, state: { waiting: { reason: "CreateContainerConfigError" } } }] }, { nodeName: "node-1" }))).toBe("DEPLOYING")
    expect(deployStatusOf(pod({ phase: "Pending" }))).toBe("QUEUED")
  })
})

describe("the instance's Pod and URL", () => {
  it("names every variable by secretKeyRef and holds no value; probes /pool/health on the container's port", () => {
    const manifest = podOf({ name: "agent-a", image: "img", env: { PORT: "9000", TOKEN: "very-secret" }, pool: "p", templateHash: "abc" }, {})
    expect(JSON.stringify(manifest)).not.toContain("very-secret")
    const container = manifest.spec!.containers[0]!
    expect(container.ports).toEqual([{ name: "http", containerPort: 9000, protocol: "TCP" }])
    expect(container.env).toEqual([
      { name: "PORT", valueFrom: { secretKeyRef: { name: "agent-a", key: "PORT" } } },
      { name: "TOKEN", valueFrom: { secretKeyRef: { name: "agent-a", key: "TOKEN" } } }
    ])
    expect(container.readinessProbe?.httpGet).toEqual({ path: "/pool/health", port: "http" })
    expect(manifest.spec!.automountServiceAccountToken).toBe(false)
  })

  it("has no URL before the Pod has an IP; a template fills in the Pod's name, namespace, IP and port", () => {
    expect(urlOf(pod({ phase: "Pending" }), {}, "ns")).toBeNull()
    expect(urlOf(pod({ phase: "Running", podIP: "10.1.2.3" }), {}, "ns")).toBe("http://10.1.2.3:8080")
    expect(urlOf(pod({ phase: "Running", podIP: "fd00::1" }), {}, "ns")).toBe("http://[fd00::1]:8080")
    expect(urlOf(pod({ phase: "Pending" }), { urlTemplate: "http://{name}.agents.{namespace}.svc:{port}" }, "ns")).toBe("http://agent-a.agents.ns.svc:8080")
  })

  it.effect("KUBE_INSTANCE_URL_TEMPLATE must name the Pod and use known placeholders", () =>
    Effect.gen(function*() {
      const read = (template: string) => Effect.either(Effect.withConfigProvider(KubernetesConfig, ConfigProvider.fromMap(new Map([["KUBE_INSTANCE_URL_TEMPLATE", template]]))))
      expect(Either.isRight(yield* read("http://{name}.svc:{port}"))).toBe(true)
      const shared = yield* read("http://agents.svc:8080")
      expect(Either.isLeft(shared) && String(shared.left)).toMatch(/must contain \{podIP\} or \{name\}/)
      const unknown = yield* read("http://{pod}:{port}")
      expect(Either.isLeft(unknown) && String(unknown.left)).toMatch(/unknown placeholder\(s\) \{pod\}/)
    }))
})

/**
 * A ComputeProvider of a few dozen lines: "instances" are HTTP servers inside this process, each serving
 * the Convos runtime contract (the reference runtime). Swap in your platform's API calls and keep the contract:
 * list is complete or fails, create is idempotent by name, destroy of a gone service succeeds.
 */
import { startReferenceRuntime } from "@warmpool/providers-convos/reference-runtime"
import { ComputeProvider, ServiceInfo, TransientError } from "@warmpool/reconciler"
import { Effect, Layer } from "effect"
import type { Server } from "node:http"

interface Running {
  readonly info: ServiceInfo
  readonly server: Server
}

export const InProcessCompute = Layer.scoped(
  ComputeProvider,
  Effect.gen(function*() {
    const running = new Map<string, Running>()
    yield* Effect.addFinalizer(() => Effect.sync(() => running.forEach(({ server }) => server.close())))

    return ComputeProvider.of({
      list: (prefix) => Effect.sync(() => [...running.values()].map((r) => r.info).filter((s) => s.name.startsWith(prefix))),
      create: ({ env, image, name }) =>
        Effect.gen(function*() {
          const existing = [...running.values()].find((r) => r.info.name === name)
          if (existing !== undefined) return { serviceId: existing.info.serviceId, url: existing.info.url, deployStatus: "SUCCESS" }
          const server = yield* Effect.tryPromise({
            try: () => startReferenceRuntime({ port: 0, apiKey: env.POOL_API_KEY ?? "", startupDelayMs: 500 }),
            catch: (error) => new TransientError({ operation: "in-process.create", message: String(error) })
          })
          const port = (server.address() as { port: number }).port
          const info = new ServiceInfo({ serviceId: `proc-${port}`, name, url: `http://127.0.0.1:${port}`, deployStatus: "SUCCESS", image, createdAt: new Date() })
          running.set(info.serviceId, { info, server })
          return { serviceId: info.serviceId, url: info.url, deployStatus: "SUCCESS" }
        }),
      destroy: (serviceId) =>
        Effect.sync(() => {
          running.get(serviceId)?.server.close()
          running.delete(serviceId)
        })
    })
  })
)

/** The HTTP API on a free loopback port over in-memory services, and a client for it (tests only). */
import { NodeHttpServer } from "@effect/platform-node"
import { Controller, PoolSpec } from "@warmpool/reconciler"
import { inMemoryConvosServices } from "@warmpool/providers-convos/testing"
import { Layer, Redacted } from "effect"
import { createServer } from "node:http"
import { httpApiLayer } from "../../src/index.js"
import { baseUrl, caller } from "./http.js"

export const KEY = "test-key-0123456789"
export const spec = new PoolSpec({ name: "pool", namePrefix: "convos-agent-", minIdle: 2, maxTotal: 5, template: { image: "img", env: {} } })

/** The API on a free loopback port, with the controller and in-memory services it serves. */
export const world = (environment: "dev" | "production" = "dev", poolSpec: PoolSpec = spec) =>
  httpApiLayer({ environment, apiKey: Redacted.make(KEY) }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
    Layer.provideMerge(Controller.layer(poolSpec, { background: false })),
    Layer.provideMerge(inMemoryConvosServices())
  )

export const base = baseUrl
export const call = caller(KEY)

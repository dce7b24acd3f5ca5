/**
 * The server under load, in its own process (as in production: clients are elsewhere): the HTTP API on the
 * Postgres store at DATABASE_URL (the seed's table), with an instantly answering runtime. Prints `ready <port>`.
 */
import { HttpServer } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Controller, LocalIncarnations, PoolSpec, SingleLeader } from "@warmpool/reconciler"
import { InMemoryCompute, InMemoryCredentials, InMemoryHealth } from "@warmpool/reconciler/testing"
import { InMemoryConvosRuntime } from "@warmpool/providers-convos/testing"
import { Effect, Layer, Logger, LogLevel, Redacted } from "effect"
import { createServer } from "node:http"
import { SeedInstanceStore } from "../../src/convos/seed-table.js"
import { httpApiLayer } from "../../src/index.js"

const spec = new PoolSpec({ name: "http", namePrefix: "http-", minIdle: 0, maxTotal: 100_000, template: { image: "img", env: {} } })
const layer = httpApiLayer({ environment: "dev", apiKey: Redacted.make(process.env.POOL_API_KEY!) }).pipe(
  Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
  Layer.provideMerge(Controller.layer(spec, { background: false })),
  Layer.provideMerge(Layer.mergeAll(InMemoryCompute.layer(), InMemoryHealth.layer(), InMemoryCredentials.layer, InMemoryConvosRuntime.layer(), SingleLeader, LocalIncarnations.layer())),
  // The server's own store: the seed's columns written, as in production.
  Layer.provideMerge(SeedInstanceStore),
  Layer.provideMerge(PgClient.layer({ url: Redacted.make(process.env.DATABASE_URL!), maxConnections: 32 }))
)

Effect.gen(function*() {
  const address = (yield* HttpServer.HttpServer).address as HttpServer.TcpAddress
  console.log(`ready ${address.port}`)
  return yield* Effect.never
}).pipe(Effect.provide(layer), Logger.withMinimumLogLevel(LogLevel.Warning), NodeRuntime.runMain)

/**
 * The pool manager with a custom provider: the server's Layers, with `InProcessCompute` as the platform.
 * Run: `npm start -w @warmpool/example-custom-provider` (embedded Postgres in ./.warmpool-example, port 3002).
 */
import { NodeRuntime } from "@effect/platform-node"
import { poolSpecOf, resolveApiKey, ServerConfig, serverLayer } from "@warmpool/server"
import { ConfigProvider, Effect, Either, Layer, Redacted } from "effect"
import { InProcessCompute } from "./provider.js"

export const program = Effect.gen(function*() {
  const settings = yield* ServerConfig
  const { key } = Either.getOrThrow(resolveApiKey(settings))
  const spec = Either.getOrThrow(poolSpecOf(settings, key))
  yield* Effect.log(`custom provider pool on http://localhost:${settings.port}/ (key ${Redacted.value(key)})`)
  return yield* Layer.launch(serverLayer(settings, key, spec, InProcessCompute))
})

// Defaults for the example, under whatever the environment sets.
const defaults = ConfigProvider.fromMap(new Map([["PORT", "3002"], ["WARMPOOL_DATA_DIR", ".warmpool-example"], ["POOL_MIN_IDLE", "2"]]))
if (process.argv[1]?.endsWith("main.ts")) {
  program.pipe(Effect.withConfigProvider(ConfigProvider.fromEnv().pipe(ConfigProvider.orElse(() => defaults))), NodeRuntime.runMain)
}

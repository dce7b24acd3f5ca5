/** Entry of a reference-runtime process: reads the environment a pool gives its instances. */
import { startReferenceRuntime } from "./server.js"

const port = Number(process.env.PORT ?? 8080)
const apiKey = process.env.POOL_API_KEY ?? ""
if (apiKey === "") {
  console.error("reference runtime: POOL_API_KEY is required")
  process.exit(2)
}
await startReferenceRuntime({ port, apiKey, startupDelayMs: Number(process.env.STARTUP_DELAY_MS ?? 3000) })
for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => process.exit(0))

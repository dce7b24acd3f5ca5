/**
 * The dashboard's own routes: its history (aggregate numbers only, open like `/metrics` and the counts) and
 * its browser code. The chart and QR-code libraries are read from node_modules once, at start, and served
 * from here: the page works offline and behind any firewall, with no CDN.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { chartsScript } from "./charts.js"
import { DashboardHistory } from "./history.js"

const require = createRequire(import.meta.url)

/** What `/dashboard/assets/:name` serves: the file of a package, resolved as Node resolves it. */
const libraries = {
  "uplot.js": { resolve: "uplot/dist/uPlot.iife.min.js", contentType: "text/javascript; charset=utf-8" },
  "uplot.css": { resolve: "uplot/dist/uPlot.min.css", contentType: "text/css; charset=utf-8" },
  "qrcode.js": { resolve: "qrcode-generator", contentType: "text/javascript; charset=utf-8" }
} as const

export const dashboardRoutes = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function*() {
    const history = yield* DashboardHistory
    const files = Object.entries(libraries).map(([name, { contentType, resolve }]) => ({
      name,
      contentType,
      body: readFileSync(require.resolve(resolve), "utf8")
    }))
    for (const { body, contentType, name } of files) {
      // The libraries change only with the server's version.
      yield* router.get(`/dashboard/assets/${name}`, HttpServerResponse.text(body, { contentType, headers: { "cache-control": "public, max-age=86400" } }))
    }
    yield* router.get("/dashboard/assets/charts.js", HttpServerResponse.text(chartsScript, { contentType: "text/javascript; charset=utf-8" }))
    yield* router.get(
      "/dashboard/history",
      Effect.gen(function*() {
        const { since } = yield* HttpServerRequest.ParsedSearchParams
        const after = typeof since === "string" ? Number(since) : Number.NaN
        return yield* history.view(Number.isFinite(after) ? after : undefined).pipe(
          Effect.flatMap((view) => HttpServerResponse.json(view)),
          Effect.catchTag("StoreError", (error) => HttpServerResponse.json({ _tag: "Unavailable", message: `database unavailable: ${error.message}` }, { status: 503 }))
        )
      })
    )
  })
)

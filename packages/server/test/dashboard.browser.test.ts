/**
 * The dashboard in a real browser (Debian's Chromium through playwright-core): the page never holds the key;
 * its libraries come from this server only; it draws the pool's history; the operator enters the key, sees
 * the instances with their URL and image, claims one, and reads the claimed one's invite as a QR code.
 * A screenshot is kept in .tsbuild/artifacts/dashboard.png.
 */
import { HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Controller, PoolSpec } from "@warmpool/reconciler"
import { inMemoryConvosServices } from "@warmpool/providers-convos/testing"
import { Duration, Effect, Exit, Layer, Metric, Redacted, Scope } from "effect"
import { existsSync, mkdirSync } from "node:fs"
import { createServer } from "node:http"
import { createRequire } from "node:module"
import { join, resolve } from "node:path"
import { chromium } from "playwright-core"
import { describe, expect, it } from "vitest"
import { httpApiLayer, RAILWAY_REQUESTS_METRIC } from "../src/index.js"

const CHROMIUM = "/usr/bin/chromium"
const KEY = "dashboard-test-key-42"
const CLAIM_KEY = "dashboard-claim-key-7"
const ARTIFACTS = resolve(import.meta.dirname, "../../../.tsbuild/artifacts")
const spec = new PoolSpec({ name: "pool", namePrefix: "convos-agent-", minIdle: 2, maxTotal: 6, template: { image: "ghcr.io/xmtplabs/convos-runtime:latest", env: {} } })
const qrcode = createRequire(import.meta.url)("qrcode-generator") as (type: number, level: string) => {
  addData: (data: string) => void
  make: () => void
  createDataURL: (cell: number, margin: number) => string
}

/** The server's HTTP API over an in-memory pool, on a free port; `close` stops it. */
const startServer = async (claimKeys: ReadonlyArray<string> = []) => {
  const scope = Effect.runSync(Scope.make())
  const layer = httpApiLayer({
    environment: "dev",
    apiKey: Redacted.make(KEY),
    claimKeys: claimKeys.map((k) => Redacted.make(k)),
    dashboard: { interval: Duration.millis(250), requestLimitPerHour: 1000 }
  }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
    Layer.provideMerge(Controller.layer(spec, { background: false })),
    Layer.provideMerge(inMemoryConvosServices())
  )
  const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
  const port = (Effect.runSync(Effect.provide(HttpServer.HttpServer, context)).address as HttpServer.TcpAddress).port
  const controller = Effect.runSync(Effect.provide(Controller, context))
  await Effect.runPromise(controller.runPass.pipe(Effect.zipRight(controller.runPass)))
  return { base: `http://127.0.0.1:${port}`, controller, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

const launch = () =>
  chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
  })

describe.skipIf(!existsSync(CHROMIUM))("dashboard in Chromium", () => {
  it("draws the history, asks for the key, claims, and shows the claimed instance's invite as a QR code", async () => {
    const { base, close, controller } = await startServer()
    // Some history to draw: four claims at once on two idle instances (two misses), and requests a Railway
    // client counted, over a few samples.
    const claim = () => fetch(`${base}/api/pool/claim`, { method: "POST", headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" }, body: JSON.stringify({ agentName: "history", instructions: "" }) })
    const statuses = await Promise.all([claim(), claim(), claim(), claim()]).then((answers) => answers.map((a) => a.status).sort())
    expect(statuses).toEqual([200, 200, 503, 503])
    for (let i = 0; i < 4; i++) {
      await Effect.runPromise(Metric.incrementBy(Metric.counter(RAILWAY_REQUESTS_METRIC), 40))
      await new Promise((r) => setTimeout(r, 300))
    }
    // The pool refills (this test drives the passes).
    await Effect.runPromise(controller.runPass.pipe(Effect.zipRight(controller.runPass)))
    const browser = await launch()
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } })
      const requested: Array<string> = []
      page.on("request", (request) => requested.push(request.url()))
      const errors: Array<string> = []
      page.on("pageerror", (error) => errors.push(error.message))
      const response = await page.goto(`${base}/`)
      expect(await response!.text()).not.toContain(KEY)
      // Without the key: counts and charts.
      await page.waitForSelector("#counts .card")
      await page.waitForSelector("#charts [data-chart=pool-pool] canvas")
      const charts = await page.locator("#charts .chart").evaluateAll((cards) => cards.map((c) => (c as HTMLElement).dataset.chart))
      expect(charts).toEqual(["pool-pool", "claims", "latency", "errors", "requests"])
      // The latest values, as the charts draw them: the pool ran dry after its two instances were claimed.
      await page.waitForFunction(() => /idle 2 · starting 0 · claimed 2/.test(document.querySelector("[data-chart=pool-pool] .latest")?.textContent ?? ""))
      // The claims chart holds the two claims and the two misses, per minute (samples every 250 ms: ×240).
      const claimed = await page.evaluate(() => (window as unknown as { warmpoolHistory: { samples: Array<{ claims: number; misses: number }> } }).warmpoolHistory.samples)
      expect([claimed.reduce((n, s) => n + s.claims, 0), claimed.reduce((n, s) => n + s.misses, 0)]).toEqual([2, 2])
      expect(await page.locator("[data-chart=requests] .latest").innerText()).toMatch(/used \(last hour\) \d+ · limit 1000/)
      expect(await page.locator("[data-chart=requests] .u-legend").innerText()).toContain("limit")
      expect(await page.locator("#claimbox").isHidden()).toBe(true)
      await page.waitForSelector("#pools tr")
      expect(await page.locator("#pools").innerText()).toMatch(/^pool\s+2\s+0\s+2\s+0/)

      await page.fill("#key", KEY)
      await page.click("#keyform button")
      await page.waitForSelector("#instances tr")
      const table = await page.locator("#instances").innerText()
      expect(table).toContain("convos-runtime:latest")
      expect(table).toMatch(/convos-agent-\w+\.in-memory\.test/)
      await page.fill("#claim input[name=agentName]", "browser-agent")
      await page.fill("#claim input[name=instructions]", "say hi")
      await page.click("#claim button")
      await page.waitForFunction(() => document.querySelector("#message")?.textContent?.startsWith("Claimed "))
      await page.waitForSelector("#instances .s-claimed")
      expect(await page.locator("#instances").innerText()).toContain("browser-agent")
      expect(await page.locator("#pools").innerText()).toMatch(/^pool \(default\)\s+\d+\s+\d+\s+3\s+0\s+2\s+6\s+ghcr\.io\/xmtplabs\/convos-runtime:latest/)
      expect(await page.locator("#instances tr:has-text('browser-agent')").innerText()).toContain("Upgrade")
      // The claimed instance's invite as a QR code: the same image the library makes from the invite URL.
      const qr = page.locator("#instances tr:has-text('browser-agent') img.qr")
      const invite = (await qr.getAttribute("title"))!
      expect(invite).toMatch(/^https:\/\/convos\.test\/v2\?i=/)
      const expected = qrcode(0, "M")
      expected.addData(invite)
      expected.make()
      expect(await qr.getAttribute("src")).toBe(expected.createDataURL(2, 4))
      expect(await page.evaluate(() => document.documentElement.outerHTML)).not.toContain(KEY)
      // Everything the page loaded came from this server.
      expect(requested.filter((url) => !url.startsWith(base) && !url.startsWith("data:"))).toEqual([])
      expect(requested).toEqual(expect.arrayContaining([`${base}/dashboard/assets/uplot.js`, `${base}/dashboard/assets/qrcode.js`]))
      expect(errors).toEqual([])
      mkdirSync(ARTIFACTS, { recursive: true })
      await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true })
    } finally {
      await browser.close()
      await close()
    }
  }, 60_000)

  it("with a claim key (POOL_CLAIM_KEYS): the counts and the claim form, nothing an operator does, and no request it may not make", async () => {
    const { base, close } = await startServer([CLAIM_KEY])
    const browser = await launch()
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } })
      const asked: Array<{ readonly path: string; readonly status: number }> = []
      page.on("response", (response) => asked.push({ path: new URL(response.url()).pathname, status: response.status() }))
      const errors: Array<string> = []
      page.on("pageerror", (error) => errors.push(error.message))
      await page.goto(`${base}/`)
      await page.fill("#key", CLAIM_KEY)
      await page.click("#keyform button")
      await page.waitForSelector("#claimbox", { state: "visible" })
      expect(await page.locator("#operate").isHidden()).toBe(true)
      expect(await page.locator("#instancesbox").isHidden()).toBe(true)
      await page.waitForSelector("#counts .card")
      await page.fill("#claim input[name=agentName]", "claim-key-agent")
      await page.click("#claim button")
      await page.waitForFunction(() => document.querySelector("#message")?.textContent?.startsWith("Claimed "))
      expect(await page.locator("#message").innerText()).toMatch(/^Claimed \S+: https:\/\/convos\.test\/v2\?i=/)
      // The page asked what the key may do, then only what a claim key may ask: never the operator's routes.
      const api = asked.filter((a) => a.path.startsWith("/api/"))
      expect(api.map((a) => a.path)).toEqual(expect.arrayContaining(["/api/pool/scope", "/api/pool/counts", "/api/pool/claim"]))
      expect(api.filter((a) => ["/api/pool/status", "/api/pool/settings"].includes(a.path))).toEqual([])
      expect(api.filter((a) => a.status >= 400)).toEqual([])
      expect(await page.locator("#instances tr").count()).toBe(0)
      expect(await page.evaluate(() => document.documentElement.outerHTML)).not.toContain(CLAIM_KEY)
      expect(errors).toEqual([])
    } finally {
      await browser.close()
      await close()
    }
  }, 60_000)
})

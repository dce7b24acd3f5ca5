/**
 * The dashboard in a real browser (Debian's Chromium through playwright-core): the page never holds the key;
 * the operator enters it, sees the counts, claims, and sees the claimed instance in the table.
 */
import { HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Controller, PoolSpec } from "@warmpool/reconciler"
import { inMemoryServices } from "@warmpool/reconciler/testing"
import { Effect, Layer, Redacted, Scope, Exit } from "effect"
import { existsSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { chromium } from "playwright-core"
import { describe, expect, it } from "vitest"
import { httpApiLayer } from "../src/index.js"

const CHROMIUM = "/usr/bin/chromium"
const KEY = "dashboard-test-key-42"
const spec = new PoolSpec({ name: "pool", namePrefix: "convos-agent-", minIdle: 2, maxTotal: 5, template: { image: "img", env: {} } })

describe.skipIf(!existsSync(CHROMIUM))("dashboard in Chromium", () => {
  it("asks for the key, shows counts, claims, and shows the claimed instance", async () => {
    const scope = Effect.runSync(Scope.make())
    const layer = httpApiLayer({ environment: "dev", apiKey: Redacted.make(KEY) }).pipe(
      Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
      Layer.provideMerge(Controller.layer(spec, { background: true })),
      Layer.provideMerge(inMemoryServices())
    )
    const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
    const port = (Effect.runSync(Effect.provide(HttpServer.HttpServer, context)).address as HttpServer.TcpAddress).port
    const controller = Effect.runSync(Effect.provide(Controller, context))
    await Effect.runPromise(controller.runPass.pipe(Effect.zipRight(controller.runPass)))
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    })
    try {
      const page = await browser.newPage()
      const response = await page.goto(`http://127.0.0.1:${port}/`)
      expect(await response!.text()).not.toContain(KEY)
      // Without the key: counts only.
      await page.waitForSelector("#counts .card")
      expect(await page.locator("#counts").innerText()).toMatch(/2\s+idle/)
      expect(await page.locator("#claimbox").isHidden()).toBe(true)
      await page.waitForSelector("#pools tr")
      expect(await page.locator("#pools").innerText()).toMatch(/^pool\s+2\s+0\s+0\s+0/)
      await page.fill("#key", KEY)
      await page.click("#keyform button")
      await page.waitForSelector("#instances tr")
      expect(await page.locator("#instances tr").count()).toBe(2)
      await page.fill("#claim input[name=agentName]", "browser-agent")
      await page.fill("#claim input[name=instructions]", "say hi")
      await page.click("#claim button")
      await page.waitForFunction(() => document.querySelector("#message")?.textContent?.startsWith("Claimed "))
      await page.waitForSelector("#instances .s-claimed")
      expect(await page.locator("#instances").innerText()).toContain("browser-agent")
      expect(await page.locator("#pools").innerText()).toMatch(/^pool \(default\)\s+\d+\s+\d+\s+1\s+0\s+2\s+5\s+img/)
      expect(await page.locator("#instances .s-claimed").locator("xpath=../..").innerText()).toContain("Upgrade")
      expect(await page.evaluate(() => document.documentElement.outerHTML)).not.toContain(KEY)
      await page.screenshot({ path: join(tmpdir(), "warmpool-dashboard.png"), fullPage: true })
    } finally {
      await browser.close()
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }, 60_000)
})

import { existsSync } from 'node:fs'
import { createServer, type RequestListener } from 'node:http'
import type { AddressInfo } from 'node:net'
import { chromium, type Browser, type BrowserContext } from 'playwright-core'
import type { Test } from 'tap'

/** Debian's Chromium; .ci/run installs it. */
export const CHROMIUM_PATH = '/usr/bin/chromium'

/** Headless Chromium for one test, closed at teardown. Fails (never skips) when Chromium is missing. */
export async function launchChromium (t: Test): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) throw new Error(`${CHROMIUM_PATH} is missing: apt-get install chromium (.ci/run does)`)
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    // Without the background-networking flags Chromium dials out to Google at start; this machine has no network.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  t.teardown(async () => { await browser.close() })
  return browser
}

/** A fresh Chromium context holding a signed-in person's cookies (from a {@link Browser} jar) for `origin`. */
export async function contextWithCookies (t: Test, origin: string, cookies: Map<string, string>): Promise<BrowserContext> {
  const chrome = await launchChromium(t)
  const context = await chrome.newContext()
  await context.addCookies([...cookies].map(([name, value]) => ({ name, value, url: origin, httpOnly: true, sameSite: 'Lax' as const })))
  return context
}

/**
 * Another origin for pages or an app (same site as the gateway: 127.0.0.1 on another port, so a
 * Lax cookie still rides along); closed at teardown. Returns `http://127.0.0.1:PORT`.
 */
export async function startOrigin (t: Test, handler: RequestListener): Promise<string> {
  const server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

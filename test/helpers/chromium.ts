import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'
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

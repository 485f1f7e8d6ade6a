import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Page } from 'playwright-core'
import type { Test } from 'tap'
import { launchChromium } from './chromium.js'
import type { Stack } from './stack.js'

/** A page on another origin (same site: 127.0.0.1 on another port, so the Lax cookie is still sent). */
export async function otherOrigin (t: Test): Promise<string> {
  const server = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>other</title>') })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** A Chromium page whose context holds the session cookie of a person signed in to the stack. */
export async function browserWithSession (t: Test, stack: Stack): Promise<Page> {
  const { browser: signedIn } = await stack.signIn()
  const chrome = await launchChromium(t)
  const context = await chrome.newContext()
  await context.addCookies([...signedIn.cookies].map(([name, value]) => ({ name, value, url: stack.url, httpOnly: true, sameSite: 'Lax' as const })))
  return await context.newPage()
}

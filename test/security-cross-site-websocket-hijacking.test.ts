import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Page } from 'playwright-core'
import t, { type Test } from 'tap'
import { launchChromium } from './helpers/chromium.js'
import { LIVE_MODEL, livePath } from './helpers/live.js'
import { startProxyStack, type ProxyStack } from './helpers/person.js'

/** A page on another origin of the same site (127.0.0.1, another port): the Lax session cookie still rides along on its WebSockets. */
async function otherOrigin (t: Test): Promise<string> {
  const server = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>other</title>') })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function signedInPage (t: Test, stack: ProxyStack): Promise<Page> {
  const { browser: signedIn } = await stack.signIn()
  const chrome = await launchChromium(t)
  const context = await chrome.newContext()
  await context.addCookies([...signedIn.cookies].map(([name, value]) => ({ name, value, url: stack.url, httpOnly: true, sameSite: 'Lax' as const })))
  return await context.newPage()
}

/** Opens a Live WebSocket from the page, sends setup, and says what came back: the first message, or how it closed. */
async function liveFromPage (page: Page, url: string): Promise<string> {
  return await page.evaluate(async ({ url, model }) => await new Promise<string>((resolve) => {
    const socket = new WebSocket(url)
    socket.onopen = () => { socket.send(JSON.stringify({ setup: { model: `models/${model}` } })) }
    socket.onmessage = async (event) => { resolve(`message ${event.data instanceof Blob ? await event.data.text() : String(event.data)}`); socket.close() }
    socket.onclose = (event) => { resolve(`closed ${event.code} ${event.reason}`) }
  }), { url, model: LIVE_MODEL })
}

t.test('a page on another origin cannot open a Live session with the visitor\'s session cookie', async (t) => {
  const stack = await startProxyStack(t)
  const page = await signedInPage(t, stack)
  const wsUrl = `${stack.url.replace('http', 'ws')}${livePath()}`

  await page.goto(`${stack.url}/auth/status`)
  t.match(await liveFromPage(page, wsUrl), /^message .*setupComplete/, 'the gateway\'s own page: the cookie opens a session')
  t.equal(stack.gemini.live.sessions.length, 1)
  t.equal(stack.gemini.live.sessions[0]?.headers.cookie, undefined, 'the cookie never goes upstream')

  await page.goto(await otherOrigin(t))
  t.match(await liveFromPage(page, wsUrl), /^closed 1006/, 'another origin: the handshake is refused')
  t.equal(stack.gemini.live.sessions.length, 1, 'and nothing reached the upstream')
})

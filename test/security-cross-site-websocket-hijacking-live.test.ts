import type { Page } from 'playwright-core'
import t from 'tap'
import { LIVE_MODEL, livePath } from './helpers/live.js'
import { browserWithSession as signedInPage, otherOrigin } from './helpers/pages.js'
import { startProxyStack } from './helpers/person.js'

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

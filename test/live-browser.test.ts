import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { launchChromium } from './helpers/chromium.js'
import { LIVE_MODEL, livePath, rawLive } from './helpers/live.js'
import { startProxyStack } from './helpers/person.js'

const SDK = fileURLToPath(new URL('../node_modules/@google/genai/dist/web/index.mjs', import.meta.url))
// The web build imports p-retry (CommonJS, REST retries only): a pass-through stands in for it in the page.
const P_RETRY = 'export default async function pRetry (run) { return await run(1) }'

t.test('a Chromium page on the gateway\'s origin mints an ephemeral token and talks to the Live API with @google/genai', async (t) => {
  const stack = await startProxyStack(t)
  const { browser: signedIn } = await stack.signIn()
  const chrome = await launchChromium(t)
  const context = await chrome.newContext()
  await context.addCookies([...signedIn.cookies].map(([name, value]) => ({ name, value, url: stack.url, httpOnly: true, sameSite: 'Lax' as const })))
  const page = await context.newPage()
  // The SDK is served as if by an app on the gateway's origin; the page itself is the gateway's (a page Playwright
  // made up would count as a public one, which Chromium's local-network checks keep off 127.0.0.1).
  const sdk = (await readFile(SDK, 'utf8')).replace("from 'p-retry'", "from '/_sdk/p-retry.mjs'")
  await page.route(`${stack.url}/_sdk/genai.mjs`, async (route) => { await route.fulfill({ contentType: 'text/javascript', body: sdk }) })
  await page.route(`${stack.url}/_sdk/p-retry.mjs`, async (route) => { await route.fulfill({ contentType: 'text/javascript', body: P_RETRY }) })
  await page.goto(`${stack.url}/auth/status`)

  const result = await page.evaluate(async (model) => {
    const { GoogleGenAI, Modality } = await import('/_sdk/genai.mjs' as string) as typeof import('@google/genai')
    const minted = await (await fetch('/v1alpha/auth_tokens', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ uses: 1 }) })).json() as { name: string }
    const ai = new GoogleGenAI({ apiKey: minted.name, httpOptions: { baseUrl: (globalThis as unknown as { location: { origin: string } }).location.origin, apiVersion: 'v1alpha' } })
    const texts: string[] = []
    let audio = 0
    await new Promise<void>((resolve, reject) => {
      ai.live.connect({
        model,
        config: { responseModalities: [Modality.AUDIO] },
        callbacks: {
          onmessage: (message) => {
            for (const part of message.serverContent?.modelTurn?.parts ?? []) {
              if (part.text !== undefined) texts.push(part.text)
              if (part.inlineData !== undefined) audio++
            }
            if (message.serverContent?.turnComplete === true) resolve()
          },
          onclose: (event) => { reject(new Error(`closed ${event.code} ${event.reason}`)) },
        },
      }).then((session) => { session.sendClientContent({ turns: 'hello from chromium', turnComplete: true }) }, reject)
    })
    return { token: minted.name, texts, audio }
  }, LIVE_MODEL)

  t.same(result.texts, ['Echo: hello from chromium'])
  t.equal(result.audio, 2, 'the audio frames arrived in the browser')
  const upstream = stack.gemini.live.sessions[0]!
  t.equal(upstream.sub, stack.provider.defaultUser.sub, 'upstream as the person')
  t.same(upstream.query, {}, 'no token in the upstream URL')
  t.equal(upstream.headers.cookie, undefined)
  const reused = await rawLive(`${stack.url.replace('http', 'ws')}${livePath('v1alpha', 'BidiGenerateContentConstrained')}?access_token=${result.token}`)
  t.match(await reused.closed, { code: 1008, reason: /used up/ }, 'the page\'s session took the token\'s one use: the token, not the cookie, opened it')
})

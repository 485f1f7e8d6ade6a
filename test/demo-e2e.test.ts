import { execFile } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { GoogleGenAI } from '@google/genai'
import type { BrowserContext, Page } from 'playwright-core'
import t from 'tap'
import { startDemo, type Demo } from '../demo/start.js'
import { freePort } from './fixtures/ports.js'
import { launchChromium } from './helpers/chromium.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
// `npm run docs:screenshots` sets this to docs/screenshots; a plain test run keeps the tree clean.
const SCREENSHOT_DIR = process.env.GEMGATE_SCREENSHOTS
/** The port `npm run demo` listens on by default, as the README shows it. */
const DOCUMENTED_PORT = 8080
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true }

async function screenshot (page: Page, name: string): Promise<void> {
  const path = SCREENSHOT_DIR === undefined ? undefined : join(ROOT, SCREENSHOT_DIR, `${name}.png`)
  if (path !== undefined) mkdirSync(join(ROOT, SCREENSHOT_DIR!), { recursive: true })
  await page.screenshot({ fullPage: true, ...(path === undefined ? {} : { path }) })
}

/** Every text the newest reply showed, recorded by a MutationObserver in the page. */
const RECORD_REPLY = `(() => {
  window.replyTexts = []
  new MutationObserver(() => {
    const reply = document.querySelector('.message.model:last-child p')
    if (reply !== null && reply.textContent !== window.replyTexts.at(-1)) window.replyTexts.push(reply.textContent)
  }).observe(document.getElementById('messages'), { subtree: true, childList: true, characterData: true })
})()`

async function signIn (page: Page, demo: Demo): Promise<void> {
  await page.goto(demo.url)
  await page.waitForURL(/\/interaction\//)
  await page.getByLabel('Username or email').fill(demo.user!.username)
  await page.getByLabel('Password').fill(demo.user!.password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('button', { name: 'Continue' }).click()
  await page.waitForURL(`${demo.url}/`)
}

/** POSTs the printed curl command's request and returns the SSE events as they arrived. */
async function curlStream (demo: Demo, key: string): Promise<{ status: number, chunks: string[] }> {
  const response = await fetch(`${demo.url}/v1beta/models/${demo.model}:streamGenerateContent?alt=sse`, {
    method: 'POST',
    headers: { 'x-goog-api-key': key, 'content-type': 'application/json' },
    body: JSON.stringify({ contents: [{ parts: [{ text: 'Hello through Gemgate' }] }] }),
  })
  const chunks: string[] = []
  if (response.body !== null) for await (const chunk of response.body) chunks.push(Buffer.from(chunk).toString())
  return { status: response.status, chunks }
}

/** The answer text of an SSE body of streamGenerateContent. */
function sseText (body: string): string {
  return body.split(/\r?\n/).filter((line) => line.startsWith('data:'))
    .map((line) => JSON.parse(line.slice(5)) as { candidates?: Array<{ content?: { parts?: Array<{ text?: string }> } }> })
    .map((event) => event.candidates?.[0]?.content?.parts?.map((part) => part.text ?? '').join('') ?? '').join('')
}

t.test('a newcomer runs the demo: sign in, chat, create a key, call the API with it, revoke it, sign out', async (t) => {
  // Screenshots show the address the README gives; a plain test run takes any free port.
  const port = SCREENSHOT_DIR === undefined ? await freePort() : DOCUMENTED_PORT
  const demo = await startDemo({ port, publicUrl: `http://${SCREENSHOT_DIR === undefined ? '127.0.0.1' : 'localhost'}:${port}` })
  t.teardown(demo.stop)
  t.equal(demo.mode, 'offline', 'with nothing configured the demo runs offline')
  const chromium = await launchChromium(t)
  const context: BrowserContext = await chromium.newContext({ viewport: { width: 1280, height: 900 } })
  const page = await context.newPage()

  await signIn(page, demo)
  t.match(await page.textContent('header'), 'Demo User', 'the example app knows who signed in')

  await page.evaluate(RECORD_REPLY)
  await page.getByLabel('Message').fill('Hello from the browser')
  await page.getByRole('button', { name: 'Send' }).click()
  await page.waitForSelector('.message.model[data-state=done]')
  const answer = await page.textContent('.message.model p')
  t.equal(answer, 'Echo: Hello from the browser', 'the reply arrives through the gateway')
  const seen = await page.evaluate('window.replyTexts') as string[]
  const partial = seen.filter((text) => text !== '' && text !== answer)
  t.ok(partial.length >= 2, `the reply streamed in: ${seen.length} states seen`)
  t.ok(partial.every((text) => answer?.startsWith(text)), 'each one a beginning of the answer')

  await page.getByRole('link', { name: 'Keys & usage' }).click()
  await page.waitForURL(`${demo.url}/auth/status`)
  t.match(await page.textContent('h1'), 'Demo User', 'the status page says who you are')
  await page.getByPlaceholder('Key name').fill('my laptop')
  await page.getByRole('button', { name: 'Create key' }).click()
  const key = (await page.textContent('.key code'))?.trim() ?? ''
  t.match(key, /^gk_[A-Za-z0-9_-]{43}$/, 'the new key is shown once')

  const curl = await curlStream(demo, key)
  t.equal(curl.status, 200, 'the printed curl command works with the key')
  t.ok(curl.chunks.length > 1, `and streams (${curl.chunks.length} chunks)`)
  t.equal(sseText(curl.chunks.join('')), 'Echo: Hello through Gemgate')

  const ai = new GoogleGenAI({ apiKey: key, httpOptions: { baseUrl: demo.url } })
  const texts: string[] = []
  for await (const chunk of await ai.models.generateContentStream({ model: demo.model, contents: 'Hello SDK' })) texts.push(chunk.text ?? '')
  t.ok(texts.length > 1, `@google/genai streams through the gateway (${texts.length} chunks)`)
  t.equal(texts.join(''), 'Echo: Hello SDK')
  const { stdout } = await promisify(execFile)(process.execPath, ['demo/genai-stream.mjs', 'Hello script'], {
    cwd: ROOT, env: { ...process.env, GEMGATE_KEY: key, GEMGATE_URL: demo.url },
  })
  t.equal(stdout.trim(), 'Echo: Hello script', 'the printed @google/genai example works as printed')

  await page.goto(`${demo.url}/auth/status`)
  t.match(await page.textContent('#keys'), 'my laptop', 'the key is listed')
  t.match(await page.textContent('#usage'), demo.model, 'usage is counted by model')
  await screenshot(page, 'status-desktop')
  const phone = await chromium.newContext({ ...PHONE, storageState: await context.storageState() })
  const phonePage = await phone.newPage()
  await phonePage.goto(`${demo.url}/auth/status`)
  const overflow = await phonePage.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth') as number
  t.equal(overflow, 0, 'nothing scrolls sideways on a phone')
  await screenshot(phonePage, 'status-phone')
  await phone.close()

  const confirmation = new Promise<string>((resolve) => page.once('dialog', (dialog) => { resolve(dialog.message()); void dialog.accept() }))
  await page.locator('#keys tr', { hasText: 'my laptop' }).getByRole('button', { name: /Revoke/ }).click()
  t.match(await confirmation, 'Revoke the key “my laptop”?', 'revoking asks first')
  await page.waitForURL(/\/auth\/status\?revoked=[^#]*#keys$/)
  t.match(await page.textContent('#keys .notice'), 'my laptop', 'and says it did')
  t.equal(await page.locator('#keys tr', { hasText: 'my laptop' }).count(), 0, 'a revoked key is gone from the list')
  t.equal((await curlStream(demo, key)).status, 401, 'and the API refuses it')

  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.waitForURL(`${demo.url}/auth/status?signed-out`)
  await page.getByRole('link', { name: 'Sign in' }).waitFor()
  t.match(await page.textContent('main'), 'You have been signed out')
  const me = await context.request.get(`${demo.url}/auth/me`)
  t.equal(me.status(), 401, 'signed out, /auth/me no longer knows the browser')
})

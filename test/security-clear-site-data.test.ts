import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { keyHeaders, signInWithKey, startProxyStack } from './helpers/person.js'

// Issue 12, "also decide": does an upstream's or the app's `Clear-Site-Data` pass? The gateway,
// the app and the status page share one origin, and `"cookies"` (or `"*"`) would wipe the
// person's session cookie, and every cookie of the registrable domain with it. Decision: the
// Gemini API never clears anything (an API answer has no business with the browser's data);
// the app may clear the origin's cache, storage and execution contexts, which are its own,
// but never cookies.

const GENERATE = '/v1beta/models/gemini-2.5-flash:generateContent'
const BODY = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] })

t.test('the app may clear the origin\'s cache and storage, never its cookies; Gemini clears nothing', async (t) => {
  const app = createServer((request, response) => {
    const value = new URL(request.url ?? '/', 'http://app').searchParams.get('clear')
    response.writeHead(200, value === null ? {} : { 'clear-site-data': value })
    response.end('ok')
  })
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { app.closeAllConnections(); app.close() })
  const stack = await startProxyStack(t, { env: { APP_UPSTREAM_URL: `http://127.0.0.1:${(app.address() as AddressInfo).port}` } })
  const holder = await signInWithKey(stack)

  const cases: Array<[string, string | null]> = [
    ['"cookies"', null],
    ['"*"', null],
    ['"cache", "cookies", "storage"', '"cache", "storage"'],
    ['"executionContexts"', '"executionContexts"'],
    ['"COOKIES", "storage"', '"storage"'],
    ['cookies', null],
    ['"prefetchCache", "unknown"', null],
  ]
  for (const [sent, passed] of cases) {
    const response = await holder.browser.fetch(`/page?clear=${encodeURIComponent(sent)}`)
    t.equal(response.status, 200)
    t.equal(response.headers.get('clear-site-data'), passed, `app sends ${sent}: ${passed ?? 'dropped'}`)
  }

  stack.gemini.fault({ kind: 'headers', headers: { 'clear-site-data': '"cookies", "storage", "cache"' } })
  const api = await fetch(`${stack.url}${GENERATE}`, { method: 'POST', headers: { 'content-type': 'application/json', ...keyHeaders(holder) }, body: BODY })
  t.equal(api.status, 200)
  t.equal(api.headers.get('clear-site-data'), null, 'the Gemini API\'s Clear-Site-Data never reaches the browser')
})

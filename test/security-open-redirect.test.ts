import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { safeReturnPath } from '../src/auth/redirect.js'
import { startStack } from './helpers/stack.js'

// oauth2-proxy's open-redirect list (MIT), copied with its note into test/fixtures.
const payloads = readFileSync(fileURLToPath(new URL('./fixtures/openredirects.txt', import.meta.url)), 'utf8')
  .replace(/\n$/, '').split('\n') // the first payload is the empty string

/** Where a browser goes for a Location header: it drops tabs and newlines and reads "\" as "/". */
function browserTarget (location: string, base: string): URL {
  return new URL(location.replace(/[\t\n\r]/g, ''), base)
}

t.test('the fixture holds the whole list', async (t) => {
  t.equal(payloads.length, 559)
})

t.test('no payload leaves the origin through safeReturnPath', async (t) => {
  const origin = 'https://gemgate.example.com'
  for (const payload of payloads) {
    const path = safeReturnPath(payload, origin)
    if (browserTarget(path, origin).origin !== origin || !path.startsWith('/') || path.startsWith('//')) {
      t.fail(`${JSON.stringify(payload)} became ${JSON.stringify(path)}`)
    }
  }
  t.pass(`${payloads.length} payloads stay on ${origin}`)
})

t.test('safe paths survive', async (t) => {
  const origin = 'https://gemgate.example.com'
  t.equal(safeReturnPath('/some/page?x=1#top', origin), '/some/page?x=1#top')
  t.equal(safeReturnPath('/auth/status', origin), '/auth/status')
  for (const unsafe of ['//evil.example', '/\\evil.example', 'https://evil.example/', '/%2F/evil.example', '/\t/evil.example', 'javascript:alert(1)', '/x\r\nSet-Cookie: a=b', '', undefined, ['/a']]) {
    t.equal(safeReturnPath(unsafe, origin), '/', `${JSON.stringify(unsafe)} becomes /`)
  }
})

t.test('every payload, given to a real sign-in, ends on the gateway origin', async (t) => {
  const stack = await startStack(t, { memory: true })
  const origin = new URL(stack.url).origin
  const failures: string[] = []
  const queue = [...payloads]
  // A handful of browsers at a time: the whole list is 559 complete sign-ins.
  await Promise.all(Array.from({ length: 6 }, async () => {
    for (let payload = queue.shift(); payload !== undefined; payload = queue.shift()) {
      const { callback } = await stack.signIn({ rd: payload })
      const location = callback.headers.get('location')
      if (callback.status !== 302 || location === null || browserTarget(location, stack.url).origin !== origin) {
        failures.push(`${JSON.stringify(payload)} → ${callback.status} ${location}`)
      }
    }
  }))
  t.same(failures, [], `all ${payloads.length} sign-ins returned to ${origin}`)
})

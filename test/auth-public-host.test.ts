// A browser that opens the gateway at another address than PUBLIC_URL (127.0.0.1 for
// localhost) gets its login cookie on that host, while the provider returns it to PUBLIC_URL:
// the callback then finds no cookie. Sign-in therefore starts on PUBLIC_URL's host.
import { get } from 'node:http'
import t from 'tap'
import { startStack } from './helpers/stack.js'

/** A GET to the gateway's socket with this Host header (fetch always sends the URL's own). */
async function getWithHost (url: string, host: string): Promise<{ status: number, location: string, setCookie: string[] }> {
  return await new Promise((resolve, reject) => {
    get(url, { headers: { host } }, (response) => {
      response.resume()
      resolve({ status: response.statusCode!, location: response.headers.location ?? '', setCookie: response.headers['set-cookie'] ?? [] })
    }).on('error', reject)
  })
}

t.test('sign-in started on another host is sent to PUBLIC_URL first', async (t) => {
  const stack = await startStack(t, { memory: true })
  const otherHost = `localhost:${new URL(stack.url).port}`
  const response = await getWithHost(`${stack.url}/auth/login?rd=%2Fchat`, otherHost)
  t.equal(response.status, 302)
  const location = new URL(response.location, stack.url)
  t.equal(location.origin, stack.url, 'to PUBLIC_URL')
  t.equal(location.pathname, '/auth/login')
  t.equal(location.searchParams.get('rd'), '/chat', 'keeping where to return')
  t.same(response.setCookie, [], 'no login cookie on the wrong host')

  const again = await getWithHost(location.href, otherHost)
  t.equal(again.status, 302)
  t.not(new URL(again.location, stack.url).origin, stack.url,
    'a proxy that rewrites Host cannot loop it: the second time, sign-in goes on to the provider')
})

t.test('sign-in on PUBLIC_URL\'s host goes straight to the provider', async (t) => {
  const stack = await startStack(t, { memory: true })
  const response = await stack.browser().fetch('/auth/login?rd=%2Fchat')
  t.equal(response.status, 302)
  t.equal(new URL(response.headers.get('location') ?? '').origin, new URL(stack.provider.issuer).origin)
})

t.test('the "not started in this browser" page names the likely cause and the address to use', async (t) => {
  const stack = await startStack(t, { memory: true })
  const response = await stack.browser().fetch('/auth/callback?code=x&state=y', { headers: { accept: 'text/html' } })
  t.equal(response.status, 400)
  const page = await response.text()
  t.match(page, 'not started in this browser')
  t.match(page, stack.url, 'names PUBLIC_URL')
})

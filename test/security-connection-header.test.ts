import t from 'tap'
import { personWithKey, startProxyStack } from './helpers/person.js'
import { rawRequest } from './helpers/raw-http.js'

const MODEL_PATH = '/v1beta/models/gemini-2.5-flash'

t.test('a client naming the injected headers in Connection cannot remove them', async (t) => {
  const stack = await startProxyStack(t, { env: { UPSTREAM_QUOTA_PROJECT: 'billing-project' } })
  const holder = await personWithKey(stack)
  const record = await stack.app.vault.load(holder.personId)
  const response = await rawRequest(stack.url, 'GET', MODEL_PATH, {
    'x-goog-api-key': holder.key,
    connection: 'keep-alive, Authorization, x-goog-user-project, X-Request-Id, x-hop-secret',
    'x-hop-secret': 'for the next hop only',
    'keep-alive': 'timeout=5',
    te: 'trailers',
    'proxy-authorization': 'Basic c2VjcmV0',
    'x-request-id': 'client-chosen-id',
  })
  t.equal(response.status, 200, 'the upstream accepted the injected token')
  const [request] = stack.gemini.requests
  t.equal(request?.headers.authorization, `Bearer ${record!.accessToken}`)
  t.equal(request?.headers['x-goog-user-project'], 'billing-project')
  t.equal(request?.headers['x-request-id'], 'client-chosen-id', 'the request id passes through')
  t.equal(response.headers['x-request-id'], 'client-chosen-id', 'and comes back')
  for (const name of ['x-hop-secret', 'keep-alive', 'te', 'proxy-authorization']) t.equal(request?.headers[name], undefined, `${name} dropped`)
})

t.test('hop-by-hop headers of the upstream, and those its Connection names, do not reach the client', async (t) => {
  const stack = await startProxyStack(t, { memory: true })
  const holder = await personWithKey(stack)
  stack.gemini.fault({ kind: 'headers', headers: { connection: 'x-upstream-internal', 'x-upstream-internal': 'secret', 'proxy-authenticate': 'Basic realm="up"', 'x-request-id': 'upstream-id', 'strict-transport-security': 'max-age=1', 'alt-svc': 'h3=":443"' } })
  const response = await fetch(`${stack.url}${MODEL_PATH}`, { headers: { 'x-goog-api-key': holder.key } })
  t.equal(response.status, 200)
  for (const name of ['x-upstream-internal', 'proxy-authenticate', 'strict-transport-security', 'alt-svc']) t.equal(response.headers.get(name), null, `${name} dropped`)
  t.not(response.headers.get('x-request-id'), 'upstream-id', 'the gateway\'s request id stands')
  t.equal(response.headers.get('x-request-id'), stack.gemini.requests[0]?.headers['x-request-id'], 'and is the one the upstream got')
})

t.test('X-Forwarded-* from an untrusted client changes nothing and is not forwarded', async (t) => {
  const stack = await startProxyStack(t, { memory: true })
  const holder = await personWithKey(stack)
  const response = await fetch(`${stack.url}/upload/v1beta/files`, {
    method: 'POST',
    headers: {
      'x-goog-api-key': holder.key,
      'content-type': 'application/json',
      'x-goog-upload-protocol': 'resumable',
      'x-goog-upload-command': 'start',
      'x-forwarded-host': 'evil.example',
      'x-forwarded-proto': 'https',
      'x-forwarded-for': '203.0.113.9',
      forwarded: 'host=evil.example;proto=https',
    },
    body: JSON.stringify({ file: { displayName: 'x' } }),
  })
  t.equal(response.status, 200)
  t.match(response.headers.get('x-goog-upload-url'), new RegExp(`^${stack.url}/upload/v1beta/files\\?upload_id=`), 'the upload URL is PUBLIC_URL\'s')
  const [request] = stack.gemini.requests
  for (const name of ['x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-for', 'forwarded']) t.equal(request?.headers[name], undefined, `${name} not forwarded`)
})

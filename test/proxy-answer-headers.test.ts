// The headers of a proxied answer as one flat list for writeHead (proxy/headers.ts answerHeaders):
// each name once, the gateway's own over the upstream's, one Vary, nothing the client must not get.
import t, { type Test } from 'tap'
import { answerHeaders, clientResponseHeaders, mergeVary } from '../src/proxy/headers.js'

const PUBLIC_URL = 'https://gateway.example'

/** The list as name -> value, failing on a name listed twice. */
function asRecord (t: Test, list: Array<string | string[]>): Record<string, string | string[]> {
  t.equal(list.length % 2, 0, 'names and values in pairs')
  const record: Record<string, string | string[]> = {}
  for (let index = 0; index < list.length; index += 2) {
    const name = list[index] as string
    t.notOk(name in record, `${name} listed once`)
    record[name] = list[index + 1]!
  }
  return record
}

t.test('the upstream\'s headers as clientResponseHeaders has them, under the gateway\'s own', async (t) => {
  const upstream = {
    'content-type': 'application/json; charset=UTF-8',
    vary: 'Origin, X-Origin, Referer',
    'x-request-id': 'google-says',
    'set-cookie': ['NID=1; Domain=.google.com'],
    'strict-transport-security': 'max-age=1',
    'access-control-allow-origin': '*',
    connection: 'keep-alive, x-hop',
    'x-hop': 'only for this hop',
    'transfer-encoding': 'chunked',
    'x-goog-upload-url': 'https://generativelanguage.googleapis.com/upload/v1beta/files?upload_id=abc',
    'x-goog-upload-control-url': 'https://elsewhere.example/steal',
    server: 'scaffolding on HTTPServer2',
  }
  const own = { 'x-request-id': 'ours', vary: 'Origin', 'x-ratelimit-remaining-requests': '9', 'content-length': 12, absent: undefined }
  const headers = asRecord(t, answerHeaders(upstream, own, PUBLIC_URL))
  t.same(headers, {
    'content-type': 'application/json; charset=UTF-8',
    'x-goog-upload-url': `${PUBLIC_URL}/upload/v1beta/files?upload_id=abc`,
    server: 'scaffolding on HTTPServer2',
    'x-request-id': 'ours',
    vary: 'Origin, X-Origin, Referer',
    'x-ratelimit-remaining-requests': '9',
    'content-length': '12',
  })
  // The same rules as the object form (what the OpenAI-compatible surface uses), the gateway's own aside.
  const { 'x-request-id': _ours, vary: _vary, 'x-ratelimit-remaining-requests': _left, 'content-length': _length, ...fromUpstream } = headers
  const { vary: _upstreamVary, ...objectForm } = clientResponseHeaders(upstream, PUBLIC_URL)
  t.same(fromUpstream, objectForm)
})

t.test('Vary: the gateway\'s alone, the upstream\'s alone, or both merged with each field once', async (t) => {
  t.same(asRecord(t, answerHeaders({}, { vary: 'Origin' }, PUBLIC_URL)), { vary: 'Origin' })
  t.same(asRecord(t, answerHeaders({ vary: 'Accept-Encoding' }, {}, PUBLIC_URL)), { vary: 'Accept-Encoding' })
  t.same(asRecord(t, answerHeaders({ vary: ['origin', 'Accept-Encoding'] }, { vary: 'Origin' }, PUBLIC_URL)), { vary: 'Origin, Accept-Encoding' })
  // A Vary the upstream's Connection header names is hop-by-hop: the gateway's stands alone.
  t.same(asRecord(t, answerHeaders({ connection: 'vary', vary: 'Cookie' }, { vary: 'Origin' }, PUBLIC_URL)), { vary: 'Origin' })
})

t.test('Vary merged the same whether remembered or not: past the bound on remembered pairs, and for a list', async (t) => {
  for (let index = 0; index < 200; index++) {
    const own = index % 2 === 0 ? 'Origin' : `Origin, X-Own-${index}`
    const upstream = `Accept-Encoding, X-Upstream-${index}, origin`
    const expected = `${own}, Accept-Encoding, X-Upstream-${index}`
    t.equal(mergeVary(own, upstream), expected)
    t.equal(mergeVary(own, upstream), expected, 'asked again')
  }
  t.equal(mergeVary('Origin', ['Accept-Encoding', 'ORIGIN', 'Accept-Encoding']), 'Origin, Accept-Encoding')
})

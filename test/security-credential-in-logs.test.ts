import { randomBytes } from 'node:crypto'
import t from 'tap'
import { rawRequest } from './helpers/raw-http.js'
import { startStack } from './helpers/stack.js'

const secret = (label: string): string => `${label}${randomBytes(16).toString('hex')}`

// Whatever shape the URL takes (malformed escapes, credentials under any parameter name, a key
// pasted into the path), no credential it carries may reach a log line at any level or an error body.
t.test('no credential from the URL in any log line or error body', async (t) => {
  const lines: string[] = []
  const stack = await startStack(t, { logLines: lines, env: { LOG_LEVEL: 'trace' } })
  const key = `gk_${randomBytes(32).toString('base64url')}`
  const accessToken = secret('ya29.')
  const oauthToken = secret('oauth-')
  const idToken = secret('eyJid.')
  const cases: Array<[string, string, string[]]> = [
    ['a malformed percent-escape before ?key=', `/v1beta/models/%ZZ?key=${key}`, [key]],
    ['a malformed escape in the query itself', `/v1beta/models?key=${key}&x=%E0%A4%A`, [key]],
    ['access_token and oauth_token query values', `/v1beta/models?access_token=${accessToken}&oauth_token=${oauthToken}`, [accessToken, oauthToken]],
    ['id_token in the query', `/v1beta/models?id_token=${idToken}`, [idToken]],
    ['a key under another parameter name', `/v1beta/models?apikey=${key}`, [key]],
    ['a key percent-encoded under another name', `/v1beta/models?k=${encodeURIComponent(key).replace('_', '%5F')}`, [key]],
    ['a key in the path', `/${key}`, [key]],
    ['a key in an API path', `/v1beta/models/${key}`, [key]],
    ['a malformed escape beside a key in the path', `/${key}/%ZZ`, [key]],
    ['a key in the path, its prefix in capitals and percent-encoded', `/v1beta/models/${key.replace('gk_', 'GK%5F')}:generateContent`, [key]],
  ]
  for (const [name, target, secrets] of cases) {
    const response = await rawRequest(stack.url, 'GET', target)
    t.ok(response.status >= 400 && response.status < 500, `${name}: answered ${response.status}`)
    for (const value of secrets) {
      const bare = value.slice(3)
      t.notOk(response.body.includes(bare), `${name}: not in the error body`)
      t.notOk(Object.values(response.headers).some((header) => header.includes(bare)), `${name}: not in a response header`)
    }
  }
  // The access line is written after the response: give the last one a moment.
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.ok(lines.length >= cases.length, 'the gateway logged (at trace level)')
  const log = lines.join('\n')
  for (const [name, , secrets] of cases) {
    for (const value of secrets) t.notOk(log.includes(value.slice(3)), `${name}: not in any log line`)
  }
})

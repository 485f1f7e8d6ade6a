import { performance } from 'node:perf_hooks'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Redis } from 'ioredis'
import t from 'tap'
import type { PersonEntry } from '../src/admin/people.js'
import { usageKey } from '../src/policy/usage.js'
import { KEY_PREFIX } from '../src/store/redis.js'
import { startAdminStack } from './helpers/admin.js'
import { NAVIGATION } from './helpers/sidecar.js'

// Scale without timing: 10,000 people answer paginated and correctly; a year of usage for many
// people streams out with bounded memory. Times and heap are printed, never asserted.

const PEOPLE = 10_000
const EXPORT_PEOPLE = 250
const MODELS = ['gemini-2.5-flash', 'gemini-2.5-pro']
const DAY_MS = 86_400_000

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const email = (index: number): string => `person-${String(index).padStart(5, '0')}@example.com`

function seedPeople (count: number, now = Date.now()): Record<string, PersonEntry> {
  return Object.fromEntries(Array.from({ length: count }, (_unused, index) => [`p${index}`, { email: email(index), name: `Person ${index}`, firstSeen: now - DAY_MS, lastSeen: now - index * 1000 }]))
}

t.test('10,000 people: searched, sorted and paginated from the index', async (t) => {
  const stack = await startAdminStack(t)
  await stack.app.people.put(seedPeople(PEOPLE))
  let started = performance.now()
  const first = await stack.admin.browser.fetch('/auth/admin/api/people')
  const firstPage = await first.json() as { people: Array<{ email: string }>, total: number, nextCursor?: string }
  t.comment(`first page of ${firstPage.total} people: ${(performance.now() - started).toFixed(1)} ms`)
  t.equal(firstPage.total, PEOPLE + 2, 'the seeded people and the two who signed in')
  t.equal(firstPage.people.length, 50)

  const seen = new Set<string>()
  let cursor: string | undefined
  let pages = 0
  started = performance.now()
  do {
    const page = await (await stack.admin.browser.fetch(`/auth/admin/api/people?sort=email&limit=500${cursor === undefined ? '' : `&cursor=${cursor}`}`)).json() as { people: Array<{ email: string }>, nextCursor?: string }
    for (const person of page.people) seen.add(person.email)
    cursor = page.nextCursor
    pages++
  } while (cursor !== undefined)
  t.comment(`all ${pages} pages of 500 by email: ${(performance.now() - started).toFixed(1)} ms`)
  t.equal(seen.size, PEOPLE + 2, 'every person exactly once across the pages')

  const search = await (await stack.admin.browser.fetch('/auth/admin/api/people?query=PERSON-0424')).json() as { people: Array<{ email: string }>, total: number }
  t.same(search.people.map((person) => person.email), Array.from({ length: 10 }, (_unused, index) => email(4240 + index)), 'a case-insensitive substring search, newest sign-in first')

  started = performance.now()
  const page = await stack.admin.browser.fetch('/auth/admin?query=person-0999&sort=email', { headers: NAVIGATION })
  const text = await page.text()
  t.comment(`people page (search among 10,000): ${(performance.now() - started).toFixed(1)} ms`)
  t.equal(page.status, 200)
  t.match(text, /10 people/)
  t.match(text, /person-09990@example\.com[\s\S]*person-09999@example\.com/, 'sorted by email')
  started = performance.now()
  const paged = await (await stack.admin.browser.fetch('/auth/admin?sort=email', { headers: NAVIGATION })).text()
  t.comment(`people page (first 50 of 10,000, with today's usage): ${(performance.now() - started).toFixed(1)} ms`)
  t.match(paged, /Next page/, 'the unfiltered page links the next one')
})

t.test('a year of usage for many people streams out with bounded memory', async (t) => {
  const stack = await startAdminStack(t)
  const people = seedPeople(EXPORT_PEOPLE)
  await stack.app.people.put(people)
  const to = new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS)
  const from = new Date(to.getTime() - 364 * DAY_MS)
  const redis = new Redis(stack.redis!.url, { keyPrefix: KEY_PREFIX })
  t.teardown(() => { redis.disconnect() })
  let pipeline = redis.pipeline()
  let queued = 0
  for (let at = from.getTime(); at <= to.getTime(); at += DAY_MS) {
    const day = new Date(at).toISOString().slice(0, 10)
    for (const personId of Object.keys(people)) {
      pipeline.hset(usageKey(personId, day), Object.fromEntries(MODELS.flatMap((model) => [[`${model}|requests`, 3], [`${model}|prompt`, 1200], [`${model}|cached`, 0], [`${model}|output`, 800], [`${model}|thinking`, 100], [`${model}|nanoUsd`, 1_500_000]])))
      if (++queued % 5000 === 0) {
        await pipeline.exec()
        pipeline = redis.pipeline()
      }
    }
  }
  await pipeline.exec()
  const expectedRows = 365 * EXPORT_PEOPLE * MODELS.length

  for (const format of ['csv', 'jsonl'] as const) {
    gc()
    const before = process.memoryUsage().heapUsed
    let peak = before
    let bytes = 0
    let lines = 0
    let chunks = 0
    let firstLine = ''
    const started = performance.now()
    const response = await stack.admin.browser.fetch(`/auth/admin/api/usage.${format}?from=${from.toISOString().slice(0, 10)}&to=${to.toISOString().slice(0, 10)}`)
    t.equal(response.status, 200)
    const decoder = new TextDecoder()
    for await (const chunk of response.body!) {
      bytes += chunk.byteLength
      const text = decoder.decode(chunk, { stream: true })
      if (firstLine === '') firstLine = text.slice(0, text.indexOf('\n'))
      for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) lines++
      if (++chunks % 200 === 0) {
        gc()
        peak = Math.max(peak, process.memoryUsage().heapUsed)
      }
    }
    const growthMb = (peak - before) / 1e6
    t.comment(`usage.${format}: ${lines} lines, ${(bytes / 1e6).toFixed(1)} MB in ${(performance.now() - started).toFixed(0)} ms; live heap grew at most ${growthMb.toFixed(1)} MB`)
    t.equal(lines, expectedRows + (format === 'csv' ? 1 : 0), 'a row per day x person x model')
    if (format === 'csv') t.equal(firstLine, 'day,person_id,email,model,requests,prompt_tokens,cached_tokens,output_tokens,thinking_tokens,cost_usd')
    else t.match(JSON.parse(firstLine), { day: from.toISOString().slice(0, 10), email: email(0), requests: 3, prompt_tokens: 1200, cost_usd: 0.0015 })
    t.ok(growthMb < bytes / 1e6 / 4, `the live heap grew far less than the export's size (${growthMb.toFixed(1)} MB of ${(bytes / 1e6).toFixed(1)} MB)`)
  }
})

t.test('an export range is checked: dates, order, at most the retention', async (t) => {
  const stack = await startAdminStack(t)
  for (const query of ['from=2026-13-01', 'to=yesterday', 'from=2026-02-01&to=2026-01-01', 'from=2020-01-01&to=2026-01-01']) {
    const response = await stack.admin.browser.fetch(`/auth/admin/api/usage.csv?${query}`)
    t.equal(response.status, 400, query)
    t.match(await response.json(), { error: { code: 400, status: 'INVALID_ARGUMENT' } })
  }
  const audit = await stack.admin.browser.fetch('/auth/admin/api/audit.jsonl')
  const records = (await audit.text()).trim().split('\n').map((line) => JSON.parse(line) as { event: string })
  t.ok(records.some((record) => record.event === 'sign-in'), 'the audit export has the sign-ins')
  t.ok(records.some((record) => record.event === 'key.created'))
})

import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GoogleGenAI } from '@google/genai'
import t from 'tap'
import { signInWithKey, startProxyStack } from './helpers/person.js'

const MODEL = 'gemini-3.8-flash'

t.test('the rest of the REST surface the SDK reaches works through the gateway', async (t) => {
  const stack = await startProxyStack(t, { gemini: { chunkDelayMs: 2 } })
  const holder = await signInWithKey(stack)
  const record = await stack.app.vault.load(holder.personId)
  const ai = new GoogleGenAI({ apiKey: holder.key, httpOptions: { baseUrl: stack.url } })

  t.test('models.list and get', async (t) => {
    const listed: string[] = []
    for await (const model of await ai.models.list()) listed.push(model.name ?? '')
    t.ok(listed.includes('models/gemini-embedding-001'))
    t.equal((await ai.models.get({ model: MODEL })).name, `models/${MODEL}`)
  })

  t.test('cachedContents: create, list, get, delete', async (t) => {
    const cache = await ai.caches.create({ model: MODEL, config: { contents: 'a long shared prefix', displayName: 'shared' } })
    t.match(cache.name, /^cachedContents\//)
    const listed: string[] = []
    for await (const item of await ai.caches.list()) listed.push(item.name ?? '')
    t.same(listed, [cache.name])
    t.equal((await ai.caches.get({ name: cache.name! })).displayName, 'shared')
    await ai.caches.delete({ name: cache.name! })
    t.equal(stack.gemini.requests.at(-1)?.method, 'DELETE')
  })

  t.test('batches: batchGenerateContent, get, cancel', async (t) => {
    const batch = await ai.batches.create({ model: MODEL, src: [{ contents: [{ role: 'user', parts: [{ text: 'batched' }] }] }], config: { displayName: 'nightly' } })
    t.match(batch.name, /^batches\//)
    t.equal(batch.state, 'JOB_STATE_PENDING')
    t.equal((await ai.batches.get({ name: batch.name! })).displayName, 'nightly')
    await ai.batches.cancel({ name: batch.name! })
    t.equal((await ai.batches.get({ name: batch.name! })).state, 'JOB_STATE_CANCELLED')
  })

  t.test('files: upload, get, list, download, delete', async (t) => {
    const bytes = Buffer.from('downloaded through the gateway\n'.repeat(50))
    const file = await ai.files.upload({ file: new Blob([bytes], { type: 'text/plain' }), config: { displayName: 'notes.txt' } })
    t.equal((await ai.files.get({ name: file.name! })).displayName, 'notes.txt')
    const listed: string[] = []
    for await (const item of await ai.files.list()) listed.push(item.name ?? '')
    t.ok(listed.includes(file.name!))
    const dir = await mkdtemp(join(tmpdir(), 'gemgate-download-'))
    t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
    await ai.files.download({ file: file.name!, downloadPath: join(dir, 'notes.txt') })
    // The SDK resolves before its write stream has necessarily flushed on every platform: read once it has.
    let downloaded = Buffer.alloc(0)
    for (let attempt = 0; attempt < 50 && downloaded.length < bytes.length; attempt++) {
      downloaded = await readFile(join(dir, 'notes.txt')).catch(() => Buffer.alloc(0))
      if (downloaded.length < bytes.length) await new Promise((resolve) => setTimeout(resolve, 10))
    }
    t.same(downloaded, bytes, 'the exact bytes')
    await ai.files.delete({ name: file.name! })
    t.equal(stack.gemini.files.has(file.name!), false)
  })

  t.test('interactions, plain and streamed (SSE)', async (t) => {
    const plain = await ai.interactions.create({ model: MODEL, input: 'hello interactions' }) as { outputs?: Array<{ text?: string }> }
    t.equal(plain.outputs?.[0]?.text, 'Echo: hello interactions')
    const events: Array<{ event_type?: string }> = []
    for await (const event of await ai.interactions.create({ model: MODEL, input: 'stream it', stream: true }) as AsyncIterable<{ event_type?: string }>) events.push(event)
    t.equal(events[0]?.event_type, 'interaction.start')
    t.equal(events.at(-1)?.event_type, 'interaction.complete')
  })

  t.test('the upstream saw only the person\'s token', async (t) => {
    t.ok(stack.gemini.requests.length > 10)
    t.ok(stack.gemini.requests.every((request) => request.headers.authorization === `Bearer ${record!.accessToken}`))
    t.ok(stack.gemini.requests.every((request) => request.apiKey === undefined))
  })
})

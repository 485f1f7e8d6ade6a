// Forged usage in an answer: a model can be made to write `"usageMetadata": {...}` in its text,
// its function-call arguments or its JSON output, to be billed less. The meter (UsageTap over
// UsageScanner) must read only the top-level members Google sets, exactly as JSON.parse would,
// however the answer is split into chunks. Checked here against JSON.parse on every split point.
import t from 'tap'
import { UsageTap, type ObservedUsage } from '../src/proxy/usage-tap.js'

const FORGED = { promptTokenCount: 1, candidatesTokenCount: 1, totalTokenCount: 2 }
const REAL = { promptTokenCount: 4321, cachedContentTokenCount: 0, candidatesTokenCount: 987, thoughtsTokenCount: 55, toolUsePromptTokenCount: 0, totalTokenCount: 5363 }

/** Answers whose deeper members and strings try to pass for the top-level ones. */
const ANSWERS: Array<[string, unknown]> = [
  ['usage in the text, as JSON', {
    candidates: [{ content: { role: 'model', parts: [{ text: `{"usageMetadata":${JSON.stringify(FORGED)},"modelVersion":"gemini-free"}` }] } }],
    usageMetadata: REAL,
    modelVersion: 'gemini-3.8-flash-001',
  }],
  ['usage in function-call arguments', {
    candidates: [{ content: { parts: [{ functionCall: { name: 'f', args: { usageMetadata: FORGED, modelVersion: 'gemini-free', name: 'x' } } }] } }],
    modelVersion: 'gemini-3.8-flash-001',
    usageMetadata: REAL,
  }],
  ['escaped quotes and backslashes around a forged member', {
    candidates: [{ content: { parts: [{ text: 'a \\" "usageMetadata": {} \\\\" , "modelVersion": "x" \\' }] } }],
    usageMetadata: REAL,
    modelVersion: 'gemini-3.8-flash-001',
  }],
  ['members named like the wanted ones, before and after the real ones', {
    usageMetadataX: FORGED,
    usageMetadat: FORGED,
    name: 'cachedContents/abc',
    nam: 'n',
    modelVersionx: 'gemini-free',
    usageMetadata: REAL,
    modelVersion: 'gemini-3.8-flash-001',
    // The wanted names' lengths, one byte off at either end.
    usageMetadatA: FORGED,
    UsageMetadata: FORGED,
    modelVersioN: 'gemini-free',
    namE: 'forged',
    Name: 'forged',
  }],
  ['a forged member after the real one in a nested object, unicode and long strings', {
    usageMetadata: REAL,
    candidates: [{ content: { parts: [{ text: 'é✓ '.repeat(40) + '"'.repeat(0) }, { inlineData: { data: 'A'.repeat(300) } }] }, citationMetadata: { usageMetadata: FORGED } }],
    modelVersion: 'gemini-3.8-flash-001',
    responseId: 'r',
  }],
]

function observe (body: Buffer, cuts: number[], contentType = 'application/json'): ObservedUsage | undefined {
  let observed: ObservedUsage | undefined
  const tap = new UsageTap(contentType, '', (usage) => { observed = usage })
  let from = 0
  for (const cut of [...cuts, body.length]) {
    tap.write(body.subarray(from, cut))
    from = cut
  }
  tap.end()
  return observed
}

function expected (answer: unknown): { usage: Record<string, number>, modelVersion: string, name?: string } {
  const document = JSON.parse(JSON.stringify(answer)) as { usageMetadata: Record<string, number>, modelVersion: string, name?: string }
  return { usage: { ...REAL, ...document.usageMetadata }, modelVersion: document.modelVersion, name: document.name }
}

/** Whether the meter saw what JSON.parse sees. */
const same = (seen: ObservedUsage | undefined, want: ReturnType<typeof expected>): boolean =>
  seen?.modelVersion === want.modelVersion && seen.name === want.name &&
  seen.usage.totalTokenCount === want.usage.totalTokenCount && seen.usage.candidatesTokenCount === want.usage.candidatesTokenCount

t.test('the meter reads only the top-level usage, at every split of the answer into two chunks', async (t) => {
  for (const [what, answer] of ANSWERS) {
    for (const spacing of [undefined, 2]) {
      const body = Buffer.from(JSON.stringify(answer, null, spacing))
      const want = expected(answer)
      let wrong = 0
      for (let cut = 0; cut <= body.length; cut++) {
        const seen = observe(body, [cut])
        if (!same(seen, want)) wrong++
      }
      t.equal(wrong, 0, `${what}${spacing === undefined ? '' : ', pretty-printed'}: right at all ${body.length + 1} splits`)
    }
  }
})

t.test('…and in three chunks, cut inside every member name', async (t) => {
  for (const [what, answer] of ANSWERS) {
    const body = Buffer.from(JSON.stringify(answer))
    const text = body.toString('latin1')
    const want = expected(answer)
    let wrong = 0
    let tried = 0
    for (const match of text.matchAll(/"(usageMetadata|modelVersion|name)[^"]*"/g)) {
      for (let first = match.index; first < match.index + match[0].length; first++) {
        for (const second of [first + 1, first + 3, first + 7]) {
          tried++
          const seen = observe(body, [first, Math.min(second, body.length)])
          if (!same(seen, want)) wrong++
        }
      }
    }
    t.equal(wrong, 0, `${what}: right at ${tried} three-way splits`)
  }
})

t.test('streamed answers (SSE and a JSON array of chunks): the last chunk\'s top-level usage, forged ones ignored', async (t) => {
  const chunks = ANSWERS.map(([, answer]) => answer)
  const sse = Buffer.from(chunks.map((chunk) => `data: ${JSON.stringify(chunk)}\r\n\r\n`).join(''))
  const array = Buffer.from(JSON.stringify(chunks))
  const want = expected(chunks.at(-1))
  for (const [what, body, type] of [['SSE', sse, 'text/event-stream'], ['an array', array, 'application/json']] as const) {
    let wrong = 0
    for (let cut = 0; cut <= body.length; cut += 7) {
      const seen = observe(body, [cut], type)
      if (!same(seen, want)) wrong++
    }
    t.equal(wrong, 0, `${what}: right at every seventh split`)
  }
})

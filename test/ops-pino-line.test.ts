// A fixed log line written without pino's serializer (src/ops/pino-line.ts) must be the line pino
// itself writes, byte for byte, and must not be used where pino would change the line.
import pino, { type LoggerOptions } from 'pino'
import t from 'tap'
import { loggerOptions } from '../src/ops/logger.js'
import { pinoLineWriter, type LineValue } from '../src/ops/pino-line.js'

const NAMES = ['requestId', 'method', 'url', 'route', 'status', 'durationMs', 'person', 'keyId', 'error'] as const

function capture (): { lines: string[], write: (line: string) => void } {
  const lines: string[] = []
  return { lines, write: (line) => { lines.push(line) } }
}

/** The gateway's own logger settings (redaction, serializers), writing to `stream`, at a fixed time unless told otherwise. */
function gatewayLogger (stream: { write: (line: string) => void }, options: LoggerOptions = {}) {
  const { stream: _stdout, ...settings } = loggerOptions({ logLevel: 'info' }, false) as LoggerOptions & { stream?: unknown }
  return pino({ ...settings, timestamp: () => ',"time":1796000000000', ...options }, stream)
}

/** The access line's logger: the gateway's, with pino's path redaction off (src/ops/request-log.ts). */
function accessLogger (stream: { write: (line: string) => void }, options: LoggerOptions = {}, bindings: Record<string, unknown> = {}) {
  return gatewayLogger(stream, options).child(bindings, { redact: [] })
}

/** The fields as the object pino is given. */
const fieldsOf = (values: readonly LineValue[]): Record<string, LineValue> => Object.fromEntries(NAMES.map((name, index) => [name, values[index]!]))

const ORDINARY: LineValue[] = ['0b7e4d4c-6a51-4f3b-9d7e-2f1c3a4b5c6d', 'POST', '/v1beta/models/gemini-2.5-flash:generateContent?alt=sse', '/v1beta/*', 200, 12.3, 'alice@example.com', 'k_1', null]
const HOSTILE: LineValue[][] = [
  ['"quoted" and \\back\\slashed', 'GET', '/a\nb\rc\td\u0000e\u001fz\u007f', null, 499, Number.NaN, 'ünïcödé 雪 😀 \u2028\u2029', '', 'a"very long value, well over forty-two characters, with "quotes" and \\'],
  ['', 'DELETE', '</script><script>alert(1)</script>', '/v1/*', 0, Number.POSITIVE_INFINITY, null, null, 'GEMGATE_UNAVAILABLE'],
  ['id', 'POST', '/x', '/y', -0, -1.5e-7, 'x'.repeat(5000), '\u00e9\u0301', 'FST_ERR_CTP_BODY_TOO_LARGE'],
]

t.test('the line is pino\'s own, byte for byte, for ordinary and hostile values', async (t) => {
  for (const values of [ORDINARY, ...HOSTILE]) {
    const ours = capture()
    const theirs = capture()
    const write = pinoLineWriter(accessLogger(ours), 'info', 'request', NAMES)
    t.ok(write, 'the gateway\'s access logger takes the fixed line')
    write!(values)
    accessLogger(theirs).info(fieldsOf(values), 'request')
    t.equal(ours.lines.length, 1)
    t.equal(ours.lines[0], theirs.lines[0], 'the same bytes as pino writes')
    t.doesNotThrow(() => JSON.parse(ours.lines[0]!), 'valid JSON')
  }
})

t.test('a lone surrogate is escaped (pino writes it raw, which UTF-8 then loses): the same value once parsed', async (t) => {
  const values: LineValue[] = [...ORDINARY]
  values[6] = 'a\ud800b'
  const ours = capture()
  pinoLineWriter(accessLogger(ours), 'info', 'request', NAMES)!(values)
  t.match(ours.lines[0], /"person":"a\\ud800b"/)
  t.equal((JSON.parse(ours.lines[0]!) as { person: string }).person, 'a\ud800b')
})

t.test('the logger\'s time, bindings, level and message key are kept', async (t) => {
  const ours = capture()
  const theirs = capture()
  const options: LoggerOptions = { timestamp: pino.stdTimeFunctions.isoTime, messageKey: 'message', base: { service: 'gemgate' } }
  pinoLineWriter(accessLogger(ours, options, { component: 'access "log"' }), 'warn', 'request', NAMES)!(ORDINARY)
  accessLogger(theirs, options, { component: 'access "log"' }).warn(fieldsOf(ORDINARY), 'request')
  const [line] = ours.lines
  t.match(line, /^\{"level":40,"time":"\d{4}-/)
  t.equal(line!.replace(/"time":"[^"]+"/, ''), theirs.lines[0]!.replace(/"time":"[^"]+"/, ''))
  t.match(JSON.parse(line!), { service: 'gemgate', component: 'access "log"', message: 'request', level: 40 })
})

t.test('nothing is written below the logger\'s level, now or after it changes', async (t) => {
  const ours = capture()
  const logger = accessLogger(ours, { level: 'warn' })
  const info = pinoLineWriter(logger, 'info', 'request', NAMES)!
  const warn = pinoLineWriter(logger, 'warn', 'request', NAMES)!
  info(ORDINARY)
  t.equal(ours.lines.length, 0, 'info is off')
  warn(ORDINARY)
  t.equal(ours.lines.length, 1, 'warn is on')
  logger.level = 'info'
  info(ORDINARY)
  t.equal(ours.lines.length, 2, 'info once the level allows it')
})

t.test('pino is left to write the line wherever it would change it', async (t) => {
  const out = capture()
  const cases: Array<[string, object]> = [
    ['a mixin', accessLogger(out, { mixin: () => ({ extra: 1 }) })],
    ['a log formatter', accessLogger(out, { formatters: { log: (object) => object } })],
    ['a logMethod hook', accessLogger(out, { hooks: { logMethod (args, method) { method.apply(this, args) } } })],
    ['a streamWrite hook', accessLogger(out, { hooks: { streamWrite: (line) => line } })],
    ['a message prefix', accessLogger(out).child({}, { msgPrefix: '[access] ' })],
    ['a nested key', accessLogger(out, { nestedKey: 'payload' })],
    ['a serializer of one of the fields', accessLogger(out, { serializers: { url: (url: string) => url.toUpperCase() } })],
    ['a redaction of one of the fields', gatewayLogger(out).child({}, { redact: ['url'] })],
    ['a redaction of every field\'s members', gatewayLogger(out).child({}, { redact: ['*.secret'] })],
    ['the gateway\'s root logger (its redaction has wildcards)', gatewayLogger(out)],
    ['a stream that reads pino\'s metadata', pino({ level: 'info' }, pino.multistream([{ stream: { write: out.write } }]))],
    ['not a pino logger', { info: () => {}, warn: () => {} }],
  ]
  for (const [what, logger] of cases) t.equal(pinoLineWriter(logger, 'info', 'request', NAMES), null, what)
  t.equal(out.lines.length, 0)
})

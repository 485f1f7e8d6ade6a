import pino, { type Logger } from 'pino'

const {
  chindingsSym, endSym, formattersSym, hooksSym, lsCacheSym, messageKeySym, mixinSym, needsMetadataGsym,
  nestedKeySym, serializersSym, streamSym, stringifiersSym, timeSym, wildcardFirstSym,
} = pino.symbols
/** In pino.symbols, though not in its type. */
const msgPrefixSym = (pino.symbols as unknown as Record<string, symbol | undefined>).msgPrefixSym

/** A logger's own parts, under pino's symbols (pino.symbols). */
type PinoParts = Record<symbol, unknown>

/** A field's value in a fixed line: pino writes a number that is not finite as null. */
export type LineValue = string | number | null

/** Whether pino does something to a line with these fields beyond level, time, bindings, fields and message. */
function transformsLines (parts: PinoParts, names: readonly string[]): boolean {
  const serializers = parts[serializersSym] as Record<string, unknown> | undefined
  const stringifiers = parts[stringifiersSym] as Record<string | symbol, unknown> | undefined
  const formatters = parts[formattersSym] as { log?: unknown } | undefined
  const hooks = parts[hooksSym] as { logMethod?: unknown, streamWrite?: unknown } | undefined
  if (serializers === undefined || stringifiers === undefined || formatters === undefined || hooks === undefined) return true
  return Boolean(parts[mixinSym]) || (msgPrefixSym === undefined || typeof parts[msgPrefixSym] === 'string') || Boolean(parts[nestedKeySym]) ||
    Boolean(formatters.log) || Boolean(hooks.logMethod) || Boolean(hooks.streamWrite) || stringifiers[wildcardFirstSym] !== undefined ||
    names.some((name) => serializers[name] !== undefined || stringifiers[name] !== undefined)
}

/**
 * Writes one kind of log line (a fixed level, message and list of fields) byte for byte as
 * `logger[level]({ …fields }, message)` would, without pino's generic serializer: pino's level
 * and time, the logger's bindings, the fields in order (strings by JSON.stringify), the message
 * and pino's end. pino's generic path walks the object, looks up a serializer and a redaction
 * per field and escapes each string in JavaScript: for the access line, one per request, that
 * was 4-5% of a model call's CPU.
 *
 * Answers null when pino would do more to the line (a mixin, a log formatter, a hook, a message
 * prefix, a serializer or redaction of one of the fields, a nested key, a stream that reads
 * pino's metadata) or `logger` is not a pino logger: then log through pino as usual.
 */
export function pinoLineWriter (logger: object, level: 'info' | 'warn', message: string, names: readonly string[]): ((values: readonly LineValue[]) => void) | null {
  const parts = logger as PinoParts
  const { levels, isLevelEnabled } = logger as Partial<Logger>
  const levelNumber = levels?.values[level]
  if (levelNumber === undefined || typeof isLevelEnabled !== 'function') return null
  const stream = parts[streamSym] as { write?: unknown, [needsMetadataGsym]?: unknown } | undefined
  const levelStart = (parts[lsCacheSym] as Record<number, string> | undefined)?.[levelNumber]
  const messageKey = parts[messageKeySym]
  if (typeof stream?.write !== 'function' || stream[needsMetadataGsym] === true || typeof parts[timeSym] !== 'function' ||
    typeof levelStart !== 'string' || typeof messageKey !== 'string' || transformsLines(parts, [...names, messageKey])) return null
  const write = stream.write.bind(stream) as (line: string) => void
  const prefixes = names.map((name) => `,${JSON.stringify(name)}:`)
  const end = `,${JSON.stringify(messageKey)}:${JSON.stringify(message)}${String(parts[endSym])}`
  return (values) => {
    if (!isLevelEnabled.call(logger, level)) return
    let line = `${levelStart}${(parts[timeSym] as () => string).call(logger)}${String(parts[chindingsSym])}`
    for (let index = 0; index < prefixes.length; index++) {
      const value = values[index]
      line += prefixes[index]! + (typeof value === 'string' ? JSON.stringify(value) : typeof value === 'number' && Number.isFinite(value) ? String(value) : 'null')
    }
    write(line + end)
  }
}

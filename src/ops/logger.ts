import type { FastifyServerOptions } from 'fastify'
import { destination, stdSerializers } from 'pino'
import type { Config } from '../config/schema.js'
import { redactUrl } from './redact.js'

/** Every place a secret can sit in a log line; pino replaces them with "[redacted]". */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-goog-api-key"]',
  'req.headers["x-gemgate-assertion"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'headers["x-goog-api-key"]',
  'headers["x-gemgate-assertion"]',
  'headers["set-cookie"]',
  '*.access_token', '*.refresh_token', '*.id_token', '*.accessToken', '*.refreshToken', '*.idToken', '*.token', '*.key',
  'access_token', 'refresh_token', 'id_token', 'accessToken', 'refreshToken', 'idToken', 'token', 'key',
]

export { redactUrl } from './redact.js'

let stdout: ReturnType<typeof destination> | undefined

/** Lines are gathered up to this many bytes (about 25 access lines) before a write. */
const LOG_BATCH_BYTES = 8 * 1024
/** …or for at most this long: a quiet gateway's lines still show at once to a person watching. */
const LOG_FLUSH_MS = 100

/**
 * Standard output, written asynchronously and in batches: pino's default writes each line with
 * a blocking write(2) on the event loop, one system call per request, and a slow reader of a pipe
 * (a log shipper) would stall every request. Each write is handed to libuv's thread pool, which
 * costs the event loop more than the line itself, so lines are gathered first (LOG_BATCH_BYTES,
 * LOG_FLUSH_MS); pino writes what is left synchronously when the process exits.
 */
function asyncStdout (): ReturnType<typeof destination> {
  return (stdout ??= destination({ dest: 1, sync: false, minLength: LOG_BATCH_BYTES, periodicFlush: LOG_FLUSH_MS }))
}

/** pino options for the gateway: JSON, or pretty when a person watches a terminal. */
export function loggerOptions (config: Pick<Config, 'logLevel'>, pretty: boolean): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: {
      req: (request: { method: string, url: string, id: string }) => ({ method: request.method, url: redactUrl(request.url), id: request.id }),
      // An error's message and stack can quote a URL (a malformed one, an upstream's): redacted like any other.
      err: (error: Error) => {
        const serialized = stdSerializers.err(error)
        return { ...serialized, message: redactUrl(serialized.message), stack: redactUrl(serialized.stack) }
      },
    },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } } : { stream: asyncStdout() }),
  }
}

import type { FastifyServerOptions } from 'fastify'
import { stdSerializers } from 'pino'
import type { Config } from '../config/schema.js'
import { LogOutput } from './log-output.js'
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

let stdout: LogOutput | undefined

/**
 * Standard output, written asynchronously and in batches (see LogOutput): pino's default writes
 * each line with a blocking write(2) on the event loop, one system call per request, and a slow
 * reader of a pipe (a log shipper) would stall every request.
 */
function batchedStdout (): LogOutput {
  return (stdout ??= new LogOutput(1))
}

/** Writes the log lines still held, synchronously: for the process's exit (main.ts). */
export function flushLogsSync (): void {
  stdout?.flushSync()
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
    ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } } : { stream: batchedStdout() }),
  }
}

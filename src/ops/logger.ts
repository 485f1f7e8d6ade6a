import type { FastifyServerOptions } from 'fastify'
import type { Config } from '../config/schema.js'

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
  'headers["set-cookie"]',
  '*.access_token', '*.refresh_token', '*.id_token', '*.accessToken', '*.refreshToken', '*.idToken', '*.token', '*.key',
  'access_token', 'refresh_token', 'id_token', 'accessToken', 'refreshToken', 'idToken', 'token', 'key',
]

/** Hides the value of `key` (gateway keys) and OAuth `code`/`state` query parameters in a URL. */
export function redactUrl (url: string): string {
  return url.replace(/([?&](?:key|code|state)=)[^&#]*/gi, '$1[redacted]')
}

/** pino options for the gateway: JSON, or pretty when a person watches a terminal. */
export function loggerOptions (config: Pick<Config, 'logLevel'>, pretty: boolean): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: {
      req: (request: { method: string, url: string, id: string }) => ({ method: request.method, url: redactUrl(request.url), id: request.id }),
    },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}),
  }
}

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
  'headers["x-gemgate-assertion"]',
  'headers["set-cookie"]',
  '*.access_token', '*.refresh_token', '*.id_token', '*.accessToken', '*.refreshToken', '*.idToken', '*.token', '*.key',
  'access_token', 'refresh_token', 'id_token', 'accessToken', 'refreshToken', 'idToken', 'token', 'key',
]

const SECRET_QUERY_PARAMS = new Set(['key', 'code', 'state'])

function decodedName (name: string): string {
  try {
    return decodeURIComponent(name.replaceAll('+', ' ')).toLowerCase()
  } catch {
    return name.toLowerCase()
  }
}

/** Hides the value of `key` (gateway keys) and OAuth `code`/`state` query parameters in a URL. */
export function redactUrl (url: string): string {
  // Names are compared decoded, as the query parser reads them: `?%6Bey=` is `key` too.
  return url.replace(/([?&])([^=&#]*)=([^&#]*)/g, (parameter, separator: string, name: string) =>
    SECRET_QUERY_PARAMS.has(decodedName(name)) ? `${separator}${name}=[redacted]` : parameter)
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

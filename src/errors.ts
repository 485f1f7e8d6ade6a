import createError from '@fastify/error'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { redactUrl } from './ops/redact.js'

/** Google's API error `status` for each HTTP status the gateway answers with. */
const GOOGLE_STATUS: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  405: 'INVALID_ARGUMENT',
  413: 'INVALID_ARGUMENT',
  415: 'INVALID_ARGUMENT',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  502: 'UNAVAILABLE',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
}

/** The body Google's APIs answer errors with, so SDKs surface the message. */
export interface GoogleErrorBody {
  error: { code: number, message: string, status: string, details?: unknown[] }
}

/** Builds Google's error shape for a status and message, with `details` (google.rpc types) when given. */
export function googleError (code: number, message: string, details?: unknown[]): GoogleErrorBody {
  const status = GOOGLE_STATUS[code] ?? (code >= 500 ? 'INTERNAL' : 'FAILED_PRECONDITION')
  return { error: { code, message, status, ...(details === undefined ? {} : { details }) } }
}

/** No session cookie, gateway key or assertion that identifies a person. */
export const UnauthenticatedError = createError('GEMGATE_UNAUTHENTICATED', '%s', 401)
/** The person's refresh token is gone or refused (invalid_grant): only a new sign-in helps. Pass PUBLIC_URL. */
export const SignInAgainError = createError('GEMGATE_SIGN_IN_AGAIN', 'Your sign-in has ended; sign in again at %s/auth/login', 401)
/** The person is known but may not do this (CSRF origin check, disallowed email). */
export const ForbiddenError = createError('GEMGATE_FORBIDDEN', '%s', 403)
/** The request itself is malformed (path escapes, bad parameters). */
export const BadRequestError = createError('GEMGATE_BAD_REQUEST', '%s', 400)
/** The thing named does not exist, or is not the caller's (a gateway key id). */
export const NotFoundError = createError('GEMGATE_NOT_FOUND', '%s', 404)
/** A dependency the request needs (Redis, the provider) is not answering. */
export const ServiceUnavailableError = createError('GEMGATE_UNAVAILABLE', '%s', 503)
/** The store (Redis) is unreachable or cannot serve now; the outage itself is logged once, not per request. */
export const StoreUnavailableError = createError('GEMGATE_STORE_UNAVAILABLE', '%s', 503)
/** Over a rate limit or budget of the policy (429 RESOURCE_EXHAUSTED, with QuotaFailure and RetryInfo details). */
export const QuotaExceededError = createError('GEMGATE_QUOTA_EXCEEDED', '%s', 429)
/** A model the policy does not allow this person (or key) to call. */
export const ModelNotAllowedError = createError('GEMGATE_MODEL_NOT_ALLOWED', '%s', 403)
/** The upstream could not be reached or reset the connection. */
export const BadGatewayError = createError('GEMGATE_BAD_GATEWAY', '%s', 502)
/** The status of a request whose client closed its connection before its answer was sent: nginx's "client closed request". */
export const CLIENT_CLOSED_STATUS = 499
/** The client closed its connection before the gateway answered (499): nothing is sent upstream any more. */
export const ClientGoneError = createError('GEMGATE_CLIENT_GONE', 'The client closed the connection', CLIENT_CLOSED_STATUS)
/** The upstream did not answer in time. */
export const GatewayTimeoutError = createError('GEMGATE_GATEWAY_TIMEOUT', '%s', 504)

/** 5xx whose cause is logged where it is noticed (once per store outage), not on every request it fails. */
const LOGGED_ELSEWHERE = new Set(['GEMGATE_STORE_UNAVAILABLE'])

/** True for an error whose cause is already logged once where it was noticed (a store outage). */
export function loggedElsewhere (error: unknown): boolean {
  return LOGGED_ELSEWHERE.has((error as { code?: string } | null)?.code ?? '')
}

/** What an error may carry for its answer besides the message: google.rpc details and headers (Retry-After). */
export interface ErrorExtras {
  details?: unknown[]
  headers?: Record<string, string>
}

/** Attaches details and headers to an error, for the error handler to send. */
export function withExtras<T extends Error> (error: T, extras: ErrorExtras): T & ErrorExtras {
  return Object.assign(error, extras)
}

/** Answers every error in Google's shape; a 5xx never carries its internals, only the request id. */
export function errorHandler (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const status = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500
  // A store outage is logged once where it was noticed. 503 UNAVAILABLE is otherwise a dependency
  // that does not answer or a replica draining: per request a warning, not an error of the gateway.
  if (status >= 500 && !loggedElsewhere(error)) request.log[error instanceof ServiceUnavailableError ? 'warn' : 'error']({ err: error }, 'request failed')
  // A 4xx is the client's doing: the request line (ops/request-log) carries its code, so one line per request.
  // Messages may quote the request's URL (Fastify's FST_ERR_BAD_URL does): never its credentials.
  else request.log.debug({ code: error.code, status }, redactUrl(error.message))
  const message = status >= 500 && error.code?.startsWith('GEMGATE_') !== true
    ? `Internal error (request id ${request.id}).`
    : redactUrl(error.message)
  const { details, headers } = error as FastifyError & ErrorExtras
  if (headers !== undefined) reply.headers(headers)
  reply.code(status).type('application/json').send(googleError(status, message, status >= 500 ? undefined : details))
}

/** 404 in Google's shape for paths nothing serves. */
export function notFoundHandler (request: FastifyRequest, reply: FastifyReply): void {
  reply.code(404).type('application/json').send(googleError(404, `No route for ${request.method} ${redactUrl(request.url.split('?')[0]!).slice(0, 200)}.`))
}

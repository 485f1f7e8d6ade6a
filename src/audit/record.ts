/** The security events the gateway records, one name each. */
export type AuditEventName =
  | 'config.loaded'
  | 'sign-in'
  | 'sign-in.refused'
  | 'sign-out'
  | 'signed-out.by-provider'
  | 'key.created'
  | 'key.revoked'
  | 'admin.action'
  | 'admin.refused'

/** How the event ended. */
export type AuditOutcome = 'success' | 'failure' | 'denied'

/** What a caller says about an event; the log adds when, where from and which request. */
export interface AuditEvent {
  event: AuditEventName
  outcome: AuditOutcome
  /** Who acted: a person id, or `anonymous` / `system` (the default). */
  actor?: string
  /** The actor's email, for people reading the record. */
  actorEmail?: string
  /** What the event was done to: a person id, a key id. */
  subject?: string
  /** Why, for refusals and failures: a fixed code, never text an attacker chose. */
  reason?: string
  /** A few more facts; plain values only. */
  detail?: Record<string, string | number | boolean>
}

/** One stored and logged audit record. */
export interface AuditRecord extends Required<Pick<AuditEvent, 'event' | 'outcome' | 'actor'>>, Omit<AuditEvent, 'event' | 'outcome' | 'actor'> {
  /** ISO 8601, UTC. */
  time: string
  requestId?: string
  ip?: string
  userAgent?: string
}

/** Longest text kept in one field of a record. */
export const MAX_FIELD_LENGTH = 256

/**
 * Shapes of credentials the gateway handles: gateway keys, JWTs (ID tokens, assertions,
 * ephemeral tokens), Google access and refresh tokens, bearer headers. A record never keeps one,
 * whichever field it reached (a user agent or a key name can carry anything).
 */
const CREDENTIAL = /gk_[\w-]+|eyJ[\w-]*\.[\w-]*\.[\w-]*|ya29\.[\w.-]+|1\/\/[\w-]{10,}|(?:bearer|token)\s+\S+/gi

/** A field's text as it may be kept: credentials blanked, length capped. */
export function scrub (text: string): string {
  return text.replace(CREDENTIAL, '[redacted]').slice(0, MAX_FIELD_LENGTH)
}

/** Where a request came from, for the record. */
export interface AuditContext {
  requestId?: string
  ip?: string
  userAgent?: string
}

/** Builds the record for an event at `now`: every text field scrubbed, empty fields left out. */
export function auditRecord (event: AuditEvent, context: AuditContext, now = new Date()): AuditRecord {
  const record: Record<string, unknown> = { time: now.toISOString(), event: event.event, outcome: event.outcome, actor: scrub(event.actor ?? 'system') }
  for (const field of ['actorEmail', 'subject', 'reason'] as const) {
    const value = event[field]
    if (value !== undefined) record[field] = scrub(value)
  }
  if (event.detail !== undefined) {
    record.detail = Object.fromEntries(Object.entries(event.detail).map(([name, value]) => [scrub(name), typeof value === 'string' ? scrub(value) : value]))
  }
  for (const field of ['requestId', 'ip', 'userAgent'] as const) {
    const value = context[field]
    if (value !== undefined && value !== '') record[field] = scrub(value)
  }
  return record as unknown as AuditRecord
}

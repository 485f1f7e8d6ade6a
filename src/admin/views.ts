import type { FastifyInstance } from 'fastify'
import type { AuditRecord } from '../audit/record.js'
import { NotFoundError } from '../errors.js'
import { usageByModel, usageKey, type ModelUsage } from '../policy/usage.js'
import type { PersonEntry } from './people.js'

const DAY_MS = 86_400_000
/** Days of usage the person view shows. */
export const PERSON_USAGE_DAYS = 30
/** Days of audit log searched for a person's recent events, and how many are kept. */
export const PERSON_AUDIT_DAYS = 7
export const PERSON_AUDIT_EVENTS = 20

/** Everything the administrator sees about one person (no secret: keys by id and name only). */
export interface PersonView {
  personId: string
  person: PersonEntry
  groups: string[]
  /** The person's tokens: valid, refreshing (the access token has expired, a refresh is due), or needs sign-in (none held). */
  tokenState: 'valid' | 'refreshing' | 'needs sign-in'
  /** The policy rule that applies to their sessions, or null when none does. */
  rule: string | null
  sessions: Array<{ createdAt: string, authTime?: string, userAgent?: string, ip?: string }>
  keys: Array<{ id: string, name: string, createdAt: string, lastUsedAt: string | null, expiresAt: string | null }>
  usage: Array<{ day: string, models: Record<string, ModelUsage> }>
  events: AuditRecord[]
}

const iso = (ms: number | null | undefined): string | null => ms === null || ms === undefined ? null : new Date(ms).toISOString()

/** The last {@link PERSON_USAGE_DAYS} days (UTC day ids, today last). */
function recentDays (now = Date.now()): string[] {
  return Array.from({ length: PERSON_USAGE_DAYS }, (_unused, index) => new Date(now - (PERSON_USAGE_DAYS - 1 - index) * DAY_MS).toISOString().slice(0, 10))
}

async function recentEvents (app: FastifyInstance, personId: string): Promise<AuditRecord[]> {
  const events: AuditRecord[] = []
  for await (const record of app.audit.read(Date.now() - PERSON_AUDIT_DAYS * DAY_MS, Date.now())) {
    if (record.actor !== personId && record.subject !== personId) continue
    events.push(record)
    // Only the newest are kept: memory stays bounded however long the log is.
    if (events.length > PERSON_AUDIT_EVENTS) events.shift()
  }
  return events.reverse()
}

/** One person's view; NotFoundError for a person who never signed in. */
export async function personView (app: FastifyInstance, personId: string): Promise<PersonView> {
  const person = await app.people.get(personId)
  if (person === null) throw new NotFoundError('No person with this id has signed in.')
  const days = recentDays()
  const [profile, tokens, sessions, keys, hashes, events] = await Promise.all([
    app.profiles.load(personId),
    app.vault.load(personId),
    app.sessions.listFor(personId),
    app.keys.list(personId),
    Promise.all(days.map(async (day) => await app.store.getFields(usageKey(personId, day)))),
    recentEvents(app, personId),
  ])
  return {
    personId,
    person,
    groups: profile?.groups ?? [],
    tokenState: tokens === null ? 'needs sign-in' : tokens.expiresAt > Date.now() ? 'valid' : 'refreshing',
    rule: profile === null ? null : app.policy.enforcer.ruleFor({ ...profile, personId, via: 'session' })?.name ?? null,
    sessions: sessions.map((session) => ({ createdAt: iso(session.createdAt)!, ...(session.authTime === undefined ? {} : { authTime: iso(session.authTime)! }), ...(session.userAgent === undefined ? {} : { userAgent: session.userAgent }), ...(session.ip === undefined ? {} : { ip: session.ip }) })),
    keys: keys.map((key) => ({ id: key.id, name: key.name, createdAt: iso(key.createdAt)!, lastUsedAt: iso(key.lastUsedAt), expiresAt: iso(key.expiresAt) })),
    usage: days.map((day, index) => ({ day, models: usageByModel(hashes[index]!) })),
    events,
  }
}

/** Today's requests and cost per person (the policy's day), for one page of the people list: one read per person shown. */
export async function usageToday (app: FastifyInstance, personIds: string[]): Promise<Map<string, { requests: number, usd: number }>> {
  const today = app.policy.enforcer.calendar.day().id
  const totals = await Promise.all(personIds.map(async (personId) => Object.values(await app.policy.enforcer.usage.read(personId, [today]))
    .reduce((sum, model) => ({ requests: sum.requests + model.requests, usd: sum.usd + model.usd }), { requests: 0, usd: 0 })))
  return new Map(personIds.map((personId, index) => [personId, totals[index]!]))
}

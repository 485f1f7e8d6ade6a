import { createHash } from 'node:crypto'
import fp from 'fastify-plugin'
import { Counter, type Registry } from 'prom-client'
import type { FastifyRequest } from 'fastify'
import { SETTINGS, type Config } from '../config/schema.js'
import { AuditLog } from './log.js'
import type { AuditContext, AuditEvent } from './record.js'

const DAY_MS = 86_400_000

declare module 'fastify' {
  interface FastifyInstance {
    /** The audit log: `app.audit.record(event, auditContext(request))` for every security event. */
    audit: AuditLog
  }
}

/** Where a request came from, as the audit record keeps it. */
export function auditContext (request: FastifyRequest): AuditContext {
  const userAgent = request.headers['user-agent']
  return { requestId: request.id, ip: request.ip, ...(userAgent === undefined ? {} : { userAgent }) }
}

/** Records `event` for a request: shorthand for the routes. */
export function audit (request: FastifyRequest, event: AuditEvent): void {
  request.server.audit.record(event, auditContext(request))
}

/**
 * A fingerprint of the settings that tells two deployments' configurations apart without
 * holding a secret: secret settings count only as set or unset.
 */
export function configFingerprint (config: Config): string {
  const flat = SETTINGS.map(({ path, secret }) => {
    const value = path.reduce<unknown>((object, key) => (object as Record<string, unknown> | undefined)?.[key], config)
    return [path.join('.'), secret === true ? value !== undefined : value]
  })
  return createHash('sha256').update(JSON.stringify(flat)).digest('hex')
}

/**
 * gemgate_security_events_total: every audit event by event, outcome and reason (sign-ins,
 * refusals and why, sign-outs, keys, administrator actions). Reasons are fixed codes, so the
 * series stay few.
 */
function countEvents (log: AuditLog, registry: Registry): void {
  const events = new Counter({
    name: 'gemgate_security_events_total',
    help: 'Audit events, by event (sign-in, sign-in.refused, sign-out, key.created, admin.action, ...), outcome and reason.',
    labelNames: ['event', 'outcome', 'reason'] as const,
    registers: [registry],
  })
  events.inc({ event: 'sign-in', outcome: 'success', reason: '' }, 0)
  log.listeners.push((record) => { events.inc({ event: record.event, outcome: record.outcome, reason: record.reason ?? '' }) })
}

/** The audit room: decorates `audit` and records the configuration a replica started with. */
export default fp(async function auditPlugin (app) {
  const log = new AuditLog(app.store, app.log.child({ component: 'audit' }), app.config.auditRetentionDays * DAY_MS)
  app.decorate('audit', log)
  if (app.hasDecorator('metrics')) countEvents(log, app.metrics)
  app.addHook('onReady', async () => {
    app.audit.record({ event: 'config.loaded', outcome: 'success', detail: { fingerprint: configFingerprint(app.config) } })
  })
}, { name: 'gemgate-audit' })

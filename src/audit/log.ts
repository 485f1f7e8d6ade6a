import type { FastifyBaseLogger } from 'fastify'
import type { Store } from '../store/store.js'
import { auditRecord, type AuditContext, type AuditEvent, type AuditRecord } from './record.js'

/** The store key of the audit log (a Redis stream). */
export const AUDIT_LOG_KEY = 'audit'
/** How many records one read of the store brings back while streaming an export. */
export const AUDIT_PAGE_SIZE = 500

/**
 * The audit log: every security event as one record, written to the log stream with
 * `audit: true` (for a log pipeline to route) and kept in the store for the retention.
 */
export class AuditLog {
  #storeFailing = false
  /** Called with every record as it is written (the security-events counter). */
  readonly listeners: Array<(record: AuditRecord) => void> = []

  constructor (
    private readonly store: Store,
    private readonly log: FastifyBaseLogger,
    private readonly retentionMs: number,
  ) {}

  /**
   * Records an event; never throws and never makes the caller wait: the log line is written at
   * once, the store write follows (a store outage is logged once, and the line still holds it).
   */
  record (event: AuditEvent, context: AuditContext = {}): void {
    const record = auditRecord(event, context)
    this.log.info({ audit: true, ...record }, `audit: ${record.event}`)
    for (const listener of this.listeners) listener(record)
    this.store.appendToLog(AUDIT_LOG_KEY, JSON.stringify(record), this.retentionMs).then(() => {
      this.#storeFailing = false
    }, (error: unknown) => {
      if (this.#storeFailing) return
      this.#storeFailing = true
      this.log.warn({ reason: (error as Error).message }, 'audit records are not being stored (the log stream still has them)')
    })
  }

  /** The records between two times, oldest first, read from the store a page at a time. */
  async * read (fromMs: number, toMs: number): AsyncGenerator<AuditRecord> {
    let after: string | undefined
    for (;;) {
      const page = await this.store.readLog(AUDIT_LOG_KEY, { fromMs, toMs, count: AUDIT_PAGE_SIZE, ...(after === undefined ? {} : { after }) })
      for (const { entry } of page) yield JSON.parse(entry) as AuditRecord
      if (page.length < AUDIT_PAGE_SIZE) return
      after = page.at(-1)!.id
    }
  }
}

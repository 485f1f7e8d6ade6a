import { EventEmitter } from 'node:events'
import { LocalQuota, type QuotaAnswer, type QuotaCheck, type QuotaRequest, type QuotaSettlement } from './quota.js'
import type { LogEntry, LogRange, Store } from './store.js'

interface Entry<T> { value: T, expiresAt: number }

/** A Store kept in this process: one replica only, lost at restart. */
export class MemoryStore implements Store {
  readonly kind = 'memory'
  readonly #strings = new Map<string, Entry<string>>()
  readonly #sets = new Map<string, Set<string>>()
  readonly #schedules = new Map<string, Map<string, number>>()
  readonly #hashes = new Map<string, Map<string, string>>()
  readonly #channels = new EventEmitter()
  readonly #logs = new Map<string, Array<LogEntry & { time: number }>>()
  #lastLogId = { time: 0, sequence: 0 }
  readonly #quota = new LocalQuota()

  #live (key: string): Entry<string> | undefined {
    const entry = this.#strings.get(key)
    if (entry !== undefined && entry.expiresAt <= Date.now()) {
      this.#strings.delete(key)
      return undefined
    }
    return entry
  }

  async get (key: string): Promise<string | null> {
    return this.#live(key)?.value ?? null
  }

  async set (key: string, value: string, ttlMs?: number): Promise<void> {
    this.#strings.set(key, { value, expiresAt: ttlMs === undefined ? Infinity : Date.now() + ttlMs })
  }

  async setIfAbsent (key: string, value: string, ttlMs: number): Promise<boolean> {
    if (this.#live(key) !== undefined) return false
    await this.set(key, value, ttlMs)
    return true
  }

  async take (key: string): Promise<string | null> {
    const value = this.#live(key)?.value ?? null
    this.#strings.delete(key)
    return value
  }

  async delete (...keys: string[]): Promise<void> {
    for (const key of keys) {
      this.#strings.delete(key)
      this.#sets.delete(key)
      this.#schedules.delete(key)
      this.#hashes.delete(key)
      this.#logs.delete(key)
    }
  }

  async deleteIfEquals (key: string, value: string): Promise<boolean> {
    if (this.#live(key)?.value !== value) return false
    this.#strings.delete(key)
    return true
  }

  async setIfEquals (key: string, expected: string, value: string, ttlMs?: number): Promise<boolean> {
    if (this.#live(key)?.value !== expected) return false
    await this.set(key, value, ttlMs)
    return true
  }

  async expireIfEquals (key: string, value: string, ttlMs: number): Promise<boolean> {
    if (this.#live(key)?.value !== value) return false
    return await this.expire(key, ttlMs)
  }

  async expire (key: string, ttlMs: number): Promise<boolean> {
    const entry = this.#live(key)
    if (entry === undefined) return false
    entry.expiresAt = Date.now() + ttlMs
    return true
  }

  async addToSet (key: string, member: string): Promise<void> {
    const set = this.#sets.get(key) ?? new Set<string>()
    set.add(member)
    this.#sets.set(key, set)
  }

  async addToSetIfBelow (key: string, member: string, limit: number): Promise<boolean> {
    const set = this.#sets.get(key)
    if (set?.has(member) === true) return true
    if ((set?.size ?? 0) >= limit) return false
    await this.addToSet(key, member)
    return true
  }

  async removeFromSet (key: string, member: string): Promise<void> {
    const set = this.#sets.get(key)
    set?.delete(member)
    if (set?.size === 0) this.#sets.delete(key)
  }

  async setMembers (key: string): Promise<string[]> {
    return [...(this.#sets.get(key) ?? [])]
  }

  async schedule (key: string, member: string, dueAt: number): Promise<void> {
    const schedule = this.#schedules.get(key) ?? new Map<string, number>()
    schedule.set(member, dueAt)
    this.#schedules.set(key, schedule)
  }

  async unschedule (key: string, member: string): Promise<void> {
    this.#schedules.get(key)?.delete(member)
  }

  async due (key: string, now: number, limit: number): Promise<string[]> {
    return [...(this.#schedules.get(key) ?? new Map<string, number>())]
      .filter(([, dueAt]) => dueAt <= now)
      .sort((a, b) => a[1] - b[1])
      .slice(0, limit)
      .map(([member]) => member)
  }

  async scheduleStats (key: string): Promise<{ size: number, soonest: number | null }> {
    const times = [...(this.#schedules.get(key)?.values() ?? [])]
    return { size: times.length, soonest: times.length === 0 ? null : Math.min(...times) }
  }

  async incrementFields (key: string, increments: Record<string, number>): Promise<void> {
    const hash = this.#hashes.get(key) ?? new Map<string, string>()
    for (const [field, amount] of Object.entries(increments)) hash.set(field, String(Number(hash.get(field) ?? 0) + amount))
    this.#hashes.set(key, hash)
  }

  async getFields (key: string): Promise<Record<string, string>> {
    return Object.fromEntries(this.#hashes.get(key) ?? [])
  }

  async getField (key: string, field: string): Promise<string | null> {
    return this.#hashes.get(key)?.get(field) ?? null
  }

  async setFields (key: string, fields: Record<string, string>): Promise<void> {
    const hash = this.#hashes.get(key) ?? new Map<string, string>()
    for (const [field, value] of Object.entries(fields)) hash.set(field, value)
    this.#hashes.set(key, hash)
  }

  async appendToLog (key: string, entry: string, retainMs: number): Promise<void> {
    const now = Date.now()
    // Ids increase even if the clock steps back, as Redis stream ids do.
    const time = Math.max(now, this.#lastLogId.time)
    const sequence = time === this.#lastLogId.time ? this.#lastLogId.sequence + 1 : 0
    this.#lastLogId = { time, sequence }
    const log = (this.#logs.get(key) ?? []).filter((kept) => kept.time >= now - retainMs)
    log.push({ id: `${time}-${sequence}`, entry, time })
    this.#logs.set(key, log)
  }

  async readLog (key: string, range: LogRange): Promise<LogEntry[]> {
    const after = range.after === undefined ? undefined : logIdParts(range.after)
    return (this.#logs.get(key) ?? [])
      .filter(({ id, time }) => time >= range.fromMs && time <= range.toMs && (after === undefined || compareLogIds(logIdParts(id), after) > 0))
      .slice(0, range.count)
      .map(({ id, entry }) => ({ id, entry }))
  }

  async reserveQuota (request: QuotaRequest): Promise<QuotaAnswer> {
    return this.#quota.reserve(request)
  }

  async settleQuota (settlement: QuotaSettlement): Promise<void> {
    this.#quota.settle(settlement)
    // Usage hashes never expire here: a memory store ends with its process anyway.
    if (settlement.usage !== undefined) await this.incrementFields(settlement.usage.key, settlement.usage.fields)
  }

  async quotaUsed (checks: QuotaCheck[]): Promise<number[]> {
    return this.#quota.used(checks)
  }

  async publish (channel: string, message: string): Promise<void> {
    this.#channels.emit(channel, message)
  }

  async subscribe (channel: string, listener: (message: string) => void): Promise<void> {
    // In one process nothing is ever missed: there is no gap to report.
    this.#channels.on(channel, listener)
  }

  async ping (): Promise<void> {}

  async close (): Promise<void> {
    this.#channels.removeAllListeners()
  }
}

function logIdParts (id: string): [number, number] {
  const [time = '0', sequence = '0'] = id.split('-')
  return [Number(time), Number(sequence)]
}

function compareLogIds (a: [number, number], b: [number, number]): number {
  return a[0] - b[0] || a[1] - b[1]
}

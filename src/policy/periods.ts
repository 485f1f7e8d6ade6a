/** A calendar day or month in the policy's time zone. */
export interface Period {
  /** `2026-12-01` or `2026-12`: part of counter keys. */
  id: string
  /** When it ends (ms since the epoch): budgets reset then. */
  endsAt: number
}

const DAY_MS = 86_400_000

type Cached = Period & { from: number }

/** Calendar days and months in one IANA time zone (default UTC), daylight-saving changes included. */
export class Calendar {
  readonly #parts: Intl.DateTimeFormat
  // The last answers: the hot path asks for today on every call, and today changes once a day.
  readonly #last = { day: undefined as Cached | undefined, month: undefined as Cached | undefined }

  constructor (readonly timeZone: string) {
    this.#parts = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' })
  }

  #wallClock (epochMs: number): { year: number, month: number, day: number, utc: number } {
    const parts = Object.fromEntries(this.#parts.formatToParts(epochMs).map((part) => [part.type, Number(part.value)])) as Record<string, number>
    const utc = Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!)
    return { year: parts.year!, month: parts.month!, day: parts.day!, utc }
  }

  /** The instant the wall clock of this zone shows midnight of that date. */
  #midnight (year: number, month: number, day: number): number {
    const guess = Date.UTC(year, month - 1, day)
    let instant = guess - (this.#wallClock(guess).utc - guess)
    // Once more with the offset that holds at the instant found (a change of offset in between).
    instant = guess - (this.#wallClock(instant).utc - instant)
    return instant
  }

  /** The day `epochMs` falls on, and when it ends. */
  day (epochMs: number = Date.now()): Period {
    return this.#remembered('day', epochMs, (at) => this.#day(at))
  }

  #remembered (slot: 'day' | 'month', epochMs: number, compute: (epochMs: number) => Period): Period {
    const cached = this.#last[slot]
    if (cached !== undefined && epochMs >= cached.from && epochMs < cached.endsAt) return cached
    const period = compute(epochMs)
    this.#last[slot] = { ...period, from: epochMs }
    return period
  }

  #day (epochMs: number): Period {
    const { year, month, day } = this.#wallClock(epochMs)
    const id = `${year}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`
    const next = new Date(Date.UTC(year, month - 1, day) + DAY_MS)
    return { id, endsAt: this.#midnight(next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate()) }
  }

  /** The month `epochMs` falls in, and when it ends. */
  month (epochMs: number = Date.now()): Period {
    return this.#remembered('month', epochMs, (at) => this.#month(at))
  }

  #month (epochMs: number): Period {
    const { year, month } = this.#wallClock(epochMs)
    const id = `${year}-${String(month).padStart(2, '0')}`
    return { id, endsAt: month === 12 ? this.#midnight(year + 1, 1, 1) : this.#midnight(year, month + 1, 1) }
  }

  /** The day ids of the month `epochMs` falls in, up to and including its day. */
  daysOfMonthSoFar (epochMs: number = Date.now()): string[] {
    const today = this.day(epochMs).id
    const [year, month, day] = today.split('-').map(Number) as [number, number, number]
    return Array.from({ length: day }, (_, index) => `${year}-${String(month).padStart(2, '0')}-${String(index + 1).padStart(2, '0')}`)
  }
}

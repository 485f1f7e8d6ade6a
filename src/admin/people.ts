import type { Store } from '../store/store.js'

/** The people index: one hash, person id → entry, so one read lists everyone (no scan of keys). */
export const PEOPLE_INDEX_KEY = 'admin:people'
/** People on one page of the list (API and page). */
export const PEOPLE_PAGE_SIZE = 50
/** Most people one page may ask for. */
export const MAX_PEOPLE_PAGE_SIZE = 500
const suspendedKey = (personId: string): string => `admin:suspended:${personId}`

/** What the index keeps of a person who signed in. */
export interface PersonEntry {
  email: string
  name: string
  /** Milliseconds since the epoch. */
  firstSeen: number
  lastSeen: number
  suspended?: boolean
}

/** How the list is ordered. */
export const PEOPLE_SORTS = ['last-seen', 'email', 'name', 'first-seen'] as const
export type PeopleSort = typeof PEOPLE_SORTS[number]

/** One page of the list; `nextCursor` is absent on the last page. */
export interface PeoplePage {
  people: Array<PersonEntry & { personId: string }>
  total: number
  nextCursor?: string
}

/** What the list is asked for. */
export interface PeopleQuery {
  query?: string
  sort?: PeopleSort
  cursor?: string
  limit?: number
}

const COMPARE: Record<PeopleSort, (a: PersonEntry, b: PersonEntry) => number> = {
  'last-seen': (a, b) => b.lastSeen - a.lastSeen,
  'first-seen': (a, b) => b.firstSeen - a.firstSeen,
  email: (a, b) => a.email.localeCompare(b.email),
  name: (a, b) => a.name.localeCompare(b.name),
}

/** An opaque cursor: the offset into the ordered, filtered list (the list is re-read per page). */
function decodeCursor (cursor: string | undefined): number {
  if (cursor === undefined || !/^[A-Za-z0-9_-]{1,16}$/.test(cursor)) return 0
  const offset = Number(Buffer.from(cursor, 'base64url').toString())
  return Number.isSafeInteger(offset) && offset > 0 ? offset : 0
}

/** The people who signed in, with last-seen and suspension; the source of the administrator's list. */
export class PeopleIndex {
  constructor (private readonly store: Store) {}

  /** Records a sign-in: first seen kept, last seen now, email and name as the provider gave them. */
  async signedIn (personId: string, profile: { email: string, name: string }, now = Date.now()): Promise<void> {
    const known = await this.get(personId)
    const entry: PersonEntry = { ...known, email: profile.email, name: profile.name, firstSeen: known?.firstSeen ?? now, lastSeen: now }
    await this.store.setFields(PEOPLE_INDEX_KEY, { [personId]: JSON.stringify(entry) })
  }

  /** Seeds or replaces entries (tests, imports). */
  async put (entries: Record<string, PersonEntry>): Promise<void> {
    await this.store.setFields(PEOPLE_INDEX_KEY, Object.fromEntries(Object.entries(entries).map(([id, entry]) => [id, JSON.stringify(entry)])))
  }

  async get (personId: string): Promise<PersonEntry | null> {
    const text = await this.store.getField(PEOPLE_INDEX_KEY, personId)
    return text === null ? null : JSON.parse(text) as PersonEntry
  }

  /** Every entry: one read of the index hash. */
  async all (): Promise<Map<string, PersonEntry>> {
    const fields = await this.store.getFields(PEOPLE_INDEX_KEY)
    return new Map(Object.entries(fields).map(([id, text]) => [id, JSON.parse(text) as PersonEntry]))
  }

  /** A page of people whose email or name contains `query` (case-insensitive), in `sort` order. */
  async list ({ query, sort = 'last-seen', cursor, limit = PEOPLE_PAGE_SIZE }: PeopleQuery): Promise<PeoplePage> {
    const needle = (query ?? '').trim().toLowerCase()
    const matching = [...await this.all()]
      .filter(([, entry]) => needle === '' || entry.email.toLowerCase().includes(needle) || entry.name.toLowerCase().includes(needle))
      .map(([personId, entry]) => ({ ...entry, personId }))
    const compare = COMPARE[sort]
    matching.sort((a, b) => compare(a, b) || a.personId.localeCompare(b.personId))
    const offset = decodeCursor(cursor)
    const size = Math.min(Math.max(1, limit), MAX_PEOPLE_PAGE_SIZE)
    const people = matching.slice(offset, offset + size)
    const next = offset + size
    return { people, total: matching.length, ...(next < matching.length ? { nextCursor: Buffer.from(String(next)).toString('base64url') } : {}) }
  }

  /** Suspends or lifts: the sign-in check reads the flag key, the list reads the entry. */
  async setSuspended (personId: string, suspended: boolean): Promise<void> {
    if (suspended) await this.store.set(suspendedKey(personId), '1')
    else await this.store.delete(suspendedKey(personId))
    const entry = await this.get(personId)
    if (entry === null) return
    const { suspended: _old, ...rest } = entry
    await this.store.setFields(PEOPLE_INDEX_KEY, { [personId]: JSON.stringify(suspended ? { ...rest, suspended } : rest) })
  }

  async isSuspended (personId: string): Promise<boolean> {
    return await this.store.get(suspendedKey(personId)) !== null
  }
}

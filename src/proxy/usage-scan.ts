/** The top-level members the meter keeps (a resource's `name`: a context cache's, as made); every other byte of an answer is looked at once and dropped. */
const WANTED = new Set(['usageMetadata', 'modelVersion', 'name'])
/** A kept member's value bigger than this is not Gemini's usage: it is dropped, not buffered. */
export const MAX_KEPT_VALUE_BYTES = 64 * 1024
/** A member name longer than any wanted one is not read further. */
const MAX_NAME_BYTES = 32
/** The wanted names as bytes, by length: a name read whole from one chunk is compared in place, no string made. */
const WANTED_BYTES = new Map([...WANTED].map((name) => [name.length, { name, bytes: Buffer.from(name, 'latin1') }]))
/** Strings up to this long are searched for their end byte by byte: cheaper than a native call for the short ones JSON is full of. */
const SHORT_STRING = 24

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d
const COMMA = 0x2c
const COLON = 0x3a

/** Whether `chunk` holds `bytes` at `from` (a short name: a loop is cheaper than a native call). */
function sameBytes (chunk: Buffer, from: number, bytes: Buffer): boolean {
  for (let index = 0; index < bytes.length; index++) if (chunk[from + index] !== bytes[index]) return false
  return true
}

/** The wanted members of one top-level object, raw JSON text each. */
export type KeptMembers = Partial<Record<'usageMetadata' | 'modelVersion' | 'name', string>>

/**
 * An incremental JSON scanner that keeps only the values of `usageMetadata`, `modelVersion` and `name`
 * among the members of the top-level object (or of each object in a top-level array, as
 * `:streamGenerateContent` without alt=sse answers). It never builds the document: per byte it
 * tracks string and nesting state, jumping over string contents with `indexOf`, so a chunk
 * costs time in proportion to its size and the scanner holds at most MAX_KEPT_VALUE_BYTES
 * whatever the answer's size. A key of the same name nested deeper (in the model's own output)
 * is never taken. `onObject` gets the kept members of each top-level object as it closes.
 */
export class UsageScanner {
  #depth = 0
  // The depth whose object members are read: 1 for an object answer, 2 for an array of objects.
  #memberDepth = 0
  #inObjectAtMemberDepth = false
  #inString = false
  #escaped = false
  #expectName = false
  #readingName = false
  #name = ''
  #nameTooLong = false
  #keeping: keyof KeptMembers | undefined
  #kept: Buffer[] = []
  #keptBytes = 0
  #members: KeptMembers = {}
  #done = false

  constructor (private readonly onObject: (members: KeptMembers) => void) {}

  /** Bytes held right now (a kept value being read). */
  get retainedBytes (): number {
    return this.#keptBytes
  }

  /** Starts over for another document (the next SSE event). */
  reset (): void {
    this.#depth = 0
    this.#memberDepth = 0
    this.#inObjectAtMemberDepth = false
    this.#inString = false
    this.#escaped = false
    this.#expectName = false
    this.#readingName = false
    this.#stopKeeping()
    this.#members = {}
    this.#done = false
  }

  /** Reads `chunk[from, to)`. */
  write (chunk: Buffer, from = 0, to = chunk.length): void {
    let index = from
    let keptFrom = this.#keeping === undefined ? -1 : from
    while (index < to && !this.#done) {
      if (this.#inString) {
        index = this.#skipString(chunk, index, to)
        continue
      }
      if (this.#depth > this.#memberDepth && this.#keeping === undefined) {
        index = this.#skipNested(chunk, index, to)
        continue
      }
      const byte = chunk[index]!
      if (byte === QUOTE) {
        this.#inString = true
        if (this.#expectName && this.#depth === this.#memberDepth) {
          this.#readingName = true
          this.#name = ''
          this.#nameTooLong = false
        }
        index++
        continue
      }
      if (this.#depth === this.#memberDepth && this.#keeping !== undefined && (byte === COMMA || byte === CLOSE_OBJECT || byte === CLOSE_ARRAY)) {
        this.#finishValue(chunk, keptFrom, index)
        keptFrom = -1
      }
      switch (byte) {
        case OPEN_OBJECT: case OPEN_ARRAY:
          this.#open(byte)
          break
        case CLOSE_OBJECT: case CLOSE_ARRAY:
          this.#close()
          break
        case COMMA:
          if (this.#depth === this.#memberDepth && this.#inObjectAtMemberDepth) this.#expectName = true
          break
        case COLON:
          if (this.#depth === this.#memberDepth && this.#inObjectAtMemberDepth) {
            this.#expectName = false
            if (!this.#nameTooLong && WANTED.has(this.#name)) {
              this.#keeping = this.#name as keyof KeptMembers
              keptFrom = index + 1
            }
            this.#name = ''
          }
          break
        default:
          if (this.#depth === 0 && byte > 0x20) this.#done = true
      }
      index++
    }
    if (keptFrom !== -1 && this.#keeping !== undefined) this.#keep(chunk, keptFrom, Math.min(index, to))
  }

  /**
   * Inside a value nested below the members (not kept): only quotes and brackets matter. Returns
   * at a string's start, once back at member depth, or at `to`.
   */
  #skipNested (chunk: Buffer, index: number, to: number): number {
    let depth = this.#depth
    const floor = this.#memberDepth
    for (; index < to; index++) {
      const byte = chunk[index]!
      if (byte === QUOTE) {
        this.#inString = true
        index++
        break
      }
      if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) depth++
      else if ((byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) && --depth === floor) {
        index++
        break
      }
    }
    this.#depth = depth
    return index
  }

  /** Moves past string content; returns where scanning goes on. */
  #skipString (chunk: Buffer, index: number, to: number): number {
    if (this.#escaped) {
      this.#escaped = false
      if (this.#readingName) this.#nameTooLong = true
      index++
    }
    let at = index
    const near = Math.min(to, index + SHORT_STRING)
    for (; at < near; at++) {
      const byte = chunk[at]!
      if (byte === QUOTE) return this.#endString(chunk, index, at)
      if (byte === BACKSLASH) break
    }
    if (at === near && at < to) {
      // A longer string, no escape so far: most hold no escaped quote, and one native search finds their end.
      const quote = chunk.indexOf(QUOTE, at)
      if (quote !== -1 && quote < to && chunk[quote - 1] !== BACKSLASH) return this.#endString(chunk, index, quote)
    }
    // Otherwise byte by byte, each backslash skipping the character it escapes.
    while (at < to) {
      const byte = chunk[at]!
      if (byte === QUOTE) return this.#endString(chunk, index, at)
      at += byte === BACKSLASH ? 2 : 1
    }
    if (at > to) this.#escaped = true
    if (this.#readingName) this.#readName(chunk, index, to)
    return to
  }

  #endString (chunk: Buffer, from: number, quote: number): number {
    if (this.#readingName) this.#readName(chunk, from, quote)
    this.#inString = false
    this.#readingName = false
    return quote + 1
  }

  #readName (chunk: Buffer, from: number, to: number): void {
    if (this.#nameTooLong) return
    if (this.#name.length + (to - from) > MAX_NAME_BYTES) {
      this.#nameTooLong = true
      return
    }
    if (this.#name === '') {
      const wanted = WANTED_BYTES.get(to - from)
      if (wanted !== undefined && sameBytes(chunk, from, wanted.bytes)) {
        this.#name = wanted.name
        return
      }
      // Not a wanted name, unless it goes on in the next chunk: only then is it kept as text.
      if (chunk[to] === QUOTE) {
        this.#nameTooLong = true
        return
      }
    }
    this.#name += chunk.toString('latin1', from, to)
  }

  #open (byte: number): void {
    this.#depth++
    if (this.#depth === 1) this.#memberDepth = byte === OPEN_OBJECT ? 1 : 2
    if (this.#depth === this.#memberDepth) {
      this.#inObjectAtMemberDepth = byte === OPEN_OBJECT
      this.#expectName = this.#inObjectAtMemberDepth
      this.#members = {}
    }
  }

  #close (): void {
    if (this.#depth === this.#memberDepth && this.#inObjectAtMemberDepth) {
      this.#inObjectAtMemberDepth = false
      this.#expectName = false
      const members = this.#members
      this.#members = {}
      this.onObject(members)
    }
    this.#depth--
    if (this.#depth <= 0) this.#done = true
  }

  #keep (chunk: Buffer, from: number, to: number): void {
    if (this.#keeping === undefined || to <= from) return
    this.#keptBytes += to - from
    // Copied: a slice would keep the whole chunk alive.
    if (this.#keptBytes > MAX_KEPT_VALUE_BYTES) this.#stopKeeping()
    else this.#kept.push(Buffer.from(chunk.subarray(from, to)))
  }

  /** The kept value ends at `chunk[to]`: made text straight from the chunk when it lies whole in it, else from the copies kept. */
  #finishValue (chunk: Buffer, from: number, to: number): void {
    const name = this.#keeping!
    if (this.#keptBytes === 0 && to - from <= MAX_KEPT_VALUE_BYTES) {
      this.#members[name] = chunk.toString('utf8', from, to)
    } else {
      this.#keep(chunk, from, to)
      // A value past MAX_KEPT_VALUE_BYTES stopped being kept: it is not Gemini's usage.
      if (this.#keeping !== undefined) this.#members[name] = Buffer.concat(this.#kept).toString('utf8')
    }
    this.#stopKeeping()
  }

  #stopKeeping (): void {
    this.#keeping = undefined
    this.#kept = []
    this.#keptBytes = 0
  }
}

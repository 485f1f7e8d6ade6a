/** Where a sign-in ends when the requested return path is missing or unsafe. */
export const DEFAULT_RETURN_PATH = '/'

// Any control character or whitespace: browsers strip tabs and newlines from URLs,
// which turns "/\t/evil.example" into "//evil.example".
const UNSAFE_CHARACTER = /[\u0000-\u0020\u007f-\u00a0\u1680\u180e\u2000-\u200f\u2028\u2029\u202f\u205f\u3000\ufeff]/
const DECODE_ROUNDS = 3

function decodeRepeatedly (value: string): string | null {
  let current = value
  for (let round = 0; round < DECODE_ROUNDS; round++) {
    let next: string
    try {
      next = decodeURIComponent(current)
    } catch {
      return null
    }
    if (next === current) return current
    current = next
  }
  return current
}

function looksLocal (path: string): boolean {
  // One leading slash, then neither a slash nor a backslash (which browsers read as a slash).
  return /^\/(?![/\\])/.test(path) && !path.includes('\\') && !UNSAFE_CHARACTER.test(path)
}

/**
 * Keeps only a same-origin relative path (with its query and fragment) for the return-to
 * parameter; anything else, including encoded and whitespace variants, becomes "/".
 */
export function safeReturnPath (candidate: unknown, publicUrl: string): string {
  if (typeof candidate !== 'string' || candidate.length === 0 || candidate.length > 2048) return DEFAULT_RETURN_PATH
  const decoded = decodeRepeatedly(candidate)
  if (decoded === null || !looksLocal(candidate) || !looksLocal(decoded)) return DEFAULT_RETURN_PATH
  const base = new URL(publicUrl)
  let resolved: URL
  try {
    resolved = new URL(candidate, base)
  } catch {
    return DEFAULT_RETURN_PATH
  }
  if (resolved.origin !== base.origin) return DEFAULT_RETURN_PATH
  const path = resolved.pathname + resolved.search + resolved.hash
  return looksLocal(path) ? path : DEFAULT_RETURN_PATH
}

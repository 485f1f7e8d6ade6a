/**
 * How good a configured secret is. A secret that passes the length rules can still be one
 * anyone can guess: the example from the docs, or a repeated word. These checks refuse those
 * at start, so a half-filled `.env` fails here and not after the first cookie is forged.
 */

/** The command the docs and error messages give for making a secret. */
export const MAKE_SECRET = 'openssl rand -base64 32'
/** The cookie secret shown as an example; refused as a value. */
export const EXAMPLE_COOKIE_SECRET = 'a-random-string-of-at-least-32-bytes'
/** The encryption key shown as an example in docs/configuration.md; refused as a value. */
export const EXAMPLE_ENCRYPTION_KEY = 'q3Jx0cM1pW8vX4Zb6n2YtKe9RfUa7LhGdSsNw5oTiEc='

const EXAMPLES = new Set([EXAMPLE_COOKIE_SECRET, EXAMPLE_ENCRYPTION_KEY])
/** Estimated bits a cookie secret must carry; 32 random bytes in base64 carry about 200. */
const MIN_SECRET_BITS = 128
/** Distinct byte values a 32-byte key must hold; random keys hold 23 or more (of 100,000 drawn). */
const MIN_DISTINCT_KEY_BYTES = 16

/** True for a value that is a shell command substitution, written where no shell runs. */
export function isShellCommand (value: string): boolean {
  return /^\$\(.*\)$|^`.*`$/.test(value.trim())
}

/** True for a value copied from the docs' examples. */
export function isExampleSecret (value: string): boolean {
  return EXAMPLES.has(value.trim())
}

/**
 * The bits a string carries if its characters were drawn independently with the frequencies
 * they have in it: an upper bound, low for repeats and short alphabets.
 */
function estimatedBits (symbols: ArrayLike<number | string>): number {
  const counts = new Map<number | string, number>()
  for (let index = 0; index < symbols.length; index++) counts.set(symbols[index]!, (counts.get(symbols[index]!) ?? 0) + 1)
  let bits = 0
  for (const count of counts.values()) bits -= count * Math.log2(count / symbols.length)
  return bits
}

/** True when a cookie secret is too predictable to sign cookies with. */
export function isGuessableSecret (value: string): boolean {
  return estimatedBits(value) < MIN_SECRET_BITS
}

/** True when a decoded 32-byte key has too few distinct bytes to be random. */
export function isGuessableKey (key: Buffer): boolean {
  return new Set(key).size < MIN_DISTINCT_KEY_BYTES
}

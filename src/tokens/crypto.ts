import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'

const VERSION = 1
const KEY_ID_LENGTH = 8
const IV_LENGTH = 12
const TAG_LENGTH = 16
const HEADER_LENGTH = 1 + KEY_ID_LENGTH + IV_LENGTH + TAG_LENGTH

/** A ciphertext that no configured key opens: unknown key, wrong person, or tampered. */
export class TokenDecryptError extends Error {
  override readonly name = 'TokenDecryptError'
  readonly code = 'GEMGATE_TOKEN_DECRYPT'
}

interface Key { id: Buffer, secret: Buffer }

/** What {@link TokenCipher.decrypt} found: the plaintext, and whether a retired key sealed it. */
export interface Opened {
  plaintext: string
  /** Sealed under a key other than the first: the next write re-encrypts it. */
  retiredKey: boolean
}

/**
 * AES-256-GCM envelopes for token records. The first key seals, every key opens; the key id
 * (8 bytes of the key's SHA-256) travels in the header, so reordering keys keeps records
 * readable. Layout, base64url: version (1) | key id (8) | IV (12) | tag (16) | ciphertext.
 * The additional authenticated data names the record's owner, so a record copied under
 * another person's key name does not open.
 */
export class TokenCipher {
  readonly #keys: Key[]

  /** `keys`: base64 (or base64url) 32-byte keys, as TOKEN_ENCRYPTION_KEYS gives them. */
  constructor (keys: readonly string[]) {
    if (keys.length === 0) throw new Error('TokenCipher needs at least one key')
    this.#keys = keys.map((key) => {
      const secret = Buffer.from(key, 'base64')
      if (secret.length !== 32) throw new Error('each token encryption key must be 32 bytes in base64')
      return { id: createHash('sha256').update(secret).digest().subarray(0, KEY_ID_LENGTH), secret }
    })
  }

  /** Seals `plaintext` under the first key, bound to `associatedData` (the person id). */
  encrypt (plaintext: string, associatedData: string): string {
    const key = this.#keys[0]!
    const iv = randomBytes(IV_LENGTH)
    const cipher = createCipheriv('aes-256-gcm', key.secret, iv, { authTagLength: TAG_LENGTH })
    cipher.setAAD(Buffer.from(associatedData, 'utf8'))
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
    return Buffer.concat([Buffer.from([VERSION]), key.id, iv, cipher.getAuthTag(), body]).toString('base64url')
  }

  /** Opens an envelope with whichever configured key sealed it; TokenDecryptError otherwise. */
  decrypt (envelope: string, associatedData: string): Opened {
    const bytes = Buffer.from(envelope, 'base64url')
    if (bytes.length < HEADER_LENGTH || bytes[0] !== VERSION) throw new TokenDecryptError('unknown token envelope format')
    const keyId = bytes.subarray(1, 1 + KEY_ID_LENGTH)
    const index = this.#keys.findIndex((key) => key.id.equals(keyId))
    if (index === -1) throw new TokenDecryptError('token record sealed under a key that is not configured')
    const ivStart = 1 + KEY_ID_LENGTH
    const tagStart = ivStart + IV_LENGTH
    const decipher = createDecipheriv('aes-256-gcm', this.#keys[index]!.secret, bytes.subarray(ivStart, tagStart), { authTagLength: TAG_LENGTH })
    decipher.setAAD(Buffer.from(associatedData, 'utf8'))
    decipher.setAuthTag(bytes.subarray(tagStart, HEADER_LENGTH))
    try {
      const plaintext = Buffer.concat([decipher.update(bytes.subarray(HEADER_LENGTH)), decipher.final()]).toString('utf8')
      return { plaintext, retiredKey: index !== 0 }
    } catch (error) {
      throw new TokenDecryptError('token record failed authentication (tampered or another person\'s)', { cause: error })
    }
  }
}

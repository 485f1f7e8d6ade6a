import t from 'tap'
import { TokenCipher } from '../src/tokens/crypto.js'
import { encryptionKey } from './token-helpers.js'

const DECRYPT_ERROR = { code: 'GEMGATE_TOKEN_DECRYPT' }
const alice = 'person-alice-000000000000000000'
const bob = 'person-bob-00000000000000000000'

t.test('round-trips and never shows the plaintext', async (t) => {
  const cipher = new TokenCipher([encryptionKey()])
  const plaintext = JSON.stringify({ accessToken: 'ya29.secret-access', refreshToken: '1//secret-refresh' })
  const envelope = cipher.encrypt(plaintext, alice)
  t.notMatch(envelope, /secret/)
  t.notMatch(Buffer.from(envelope, 'base64url').toString('latin1'), /secret/)
  t.match(envelope, /^[\w-]+$/, 'base64url')
  t.same(cipher.decrypt(envelope, alice), { plaintext, retiredKey: false })
  t.not(cipher.encrypt(plaintext, alice), envelope, 'a fresh IV every time')
})

t.test('the envelope header carries the version and the key id', async (t) => {
  const key = encryptionKey()
  const bytes = Buffer.from(new TokenCipher([key]).encrypt('x', alice), 'base64url')
  t.equal(bytes[0], 1)
  const again = Buffer.from(new TokenCipher([key, encryptionKey()]).encrypt('y', alice), 'base64url')
  t.same(again.subarray(1, 9), bytes.subarray(1, 9), 'same key, same id')
  const other = Buffer.from(new TokenCipher([encryptionKey()]).encrypt('x', alice), 'base64url')
  t.notSame(other.subarray(1, 9), bytes.subarray(1, 9))
})

t.test('the first key encrypts, every key decrypts, reordering keeps records readable', async (t) => {
  const [oldKey, newKey] = [encryptionKey(), encryptionKey()]
  const sealedOld = new TokenCipher([oldKey]).encrypt('old', alice)
  const rotated = new TokenCipher([newKey, oldKey])
  t.same(rotated.decrypt(sealedOld, alice), { plaintext: 'old', retiredKey: true })
  const sealedNew = rotated.encrypt('new', alice)
  const reordered = new TokenCipher([oldKey, newKey])
  t.same(reordered.decrypt(sealedNew, alice), { plaintext: 'new', retiredKey: true })
  t.same(reordered.decrypt(sealedOld, alice), { plaintext: 'old', retiredKey: false })
  t.throws(() => new TokenCipher([newKey]).decrypt(sealedOld, alice), DECRYPT_ERROR, 'a removed key no longer opens')
})

t.test('a record is bound to its person', async (t) => {
  const cipher = new TokenCipher([encryptionKey()])
  const envelope = cipher.encrypt('alice tokens', alice)
  t.throws(() => cipher.decrypt(envelope, bob), DECRYPT_ERROR)
})

t.test('tampering is detected', async (t) => {
  const cipher = new TokenCipher([encryptionKey()])
  const bytes = Buffer.from(cipher.encrypt('alice tokens', alice), 'base64url')
  for (const index of [0, 5, 15, 30, bytes.length - 1]) {
    const tampered = Buffer.from(bytes)
    tampered[index] = tampered[index]! ^ 1
    t.throws(() => cipher.decrypt(tampered.toString('base64url'), alice), DECRYPT_ERROR, `byte ${index}`)
  }
  t.throws(() => cipher.decrypt('short', alice), DECRYPT_ERROR)
})

t.test('refuses keys that are not 32 bytes', async (t) => {
  t.throws(() => new TokenCipher([]))
  t.throws(() => new TokenCipher([Buffer.alloc(16).toString('base64')]))
})

import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { Assertions } from '../src/sidecar/assertion.js'
import { DEFAULT_KEY_ROTATION_MS, KEY_RECHECK_MS, SigningKeyRing } from '../src/sidecar/jwks.js'
import { createStore } from '../src/store/redis.js'
import type { Store } from '../src/store/store.js'
import { TokenCipher, TokenDecryptError } from '../src/tokens/crypto.js'
import { startRedis } from './fixtures/redis.js'

const PERSON = { sub: 'alice', email: 'alice@example.com', name: 'Alice' }
const ISSUER = 'https://gate.example'
const DAY = DEFAULT_KEY_ROTATION_MS

async function sharedStore (t: Test): Promise<{ store: Store, url: string }> {
  const redis = await startRedis(t)
  const store = await createStore({ url: redis.url })
  t.teardown(async () => { await store.close() })
  return { store, url: redis.url }
}

/** A replica's ring on the shared store, with a clock the test moves. */
function replica (store: Store, cipher: TokenCipher, clock: { now: number }): SigningKeyRing {
  return new SigningKeyRing(store, cipher, { now: () => clock.now })
}

t.test('replicas that start together converge on one key, stored only encrypted', async (t) => {
  const { store } = await sharedStore(t)
  const cipher = new TokenCipher([randomBytes(32).toString('base64')])
  const clock = { now: 1000 * DAY + 5_000 }
  const rings = Array.from({ length: 5 }, () => replica(store, cipher, clock))
  const keys = await Promise.all(rings.flatMap((ring) => [ring.current(), ring.current()]))
  t.equal(new Set(keys.map((key) => key.kid)).size, 1, 'one kid for all')

  const stored = await store.get('assertion:signing-key:1000')
  t.ok(stored, 'kept in the store under its period')
  t.notMatch(stored!, /"d"|"kty"|"crv"/, 'the private JWK is not readable at rest')
  const jwks = await rings[3]!.publicKeys()
  t.equal(jwks.length, 1)
  t.notOk('d' in jwks[0]!, 'the published JWK has no private part')
  t.match(jwks[0], { kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig', kid: keys[0]!.kid })
  t.throws(() => new TokenCipher([randomBytes(32).toString('base64')]).decrypt(JSON.parse(stored!).sealed, 'x'), TokenDecryptError, 'another encryption key cannot open it')
})

t.test('a key sealed under an encryption key no longer configured is replaced, not a 500', async (t) => {
  const { store } = await sharedStore(t)
  const clock = { now: 1000 * DAY + 5_000 }
  const retired = replica(store, new TokenCipher([randomBytes(32).toString('base64')]), clock)
  const old = await retired.current()
  const replaced = new SigningKeyRing(store, new TokenCipher([randomBytes(32).toString('base64')]), { now: () => clock.now })
  const fresh = await replaced.current()
  t.not(fresh.kid, old.kid, 'a new signing key')
  t.match(await store.get('assertion:signing-key:1000'), fresh.kid, 'stored in place of the unreadable one')
  t.ok(await new Assertions(replaced, ISSUER).issue(PERSON), 'and assertions are issued again')
})

t.test('rotation: a new key each period, the previous one published and trusted for one more', async (t) => {
  const { store } = await sharedStore(t)
  const cipher = new TokenCipher([randomBytes(32).toString('base64')])
  const clock = { now: 2000 * DAY + DAY - 60_000 }
  const ring = replica(store, cipher, clock)
  const assertions = new Assertions(ring, ISSUER)
  const before = await assertions.issue(PERSON)
  const oldKid = (await ring.current()).kid

  clock.now += 2 * 60_000 // past the period boundary, assertion still within its five minutes
  const newKid = (await ring.current()).kid
  t.not(newKid, oldKid, 'rotated')
  t.equal(await assertions.verify(before), 'alice', 'an assertion signed just before rotation still verifies')
  t.same((await ring.publicKeys()).map((key) => key.kid).sort(), [oldKid, newKid].sort(), 'both published during the overlap')

  clock.now += DAY
  const later = (await ring.publicKeys()).map((key) => key.kid)
  t.notOk(later.includes(oldKid), 'a period later the old key is retired')
  t.ok(later.includes(newKid), 'the previous one is still published')
  t.equal(later.length, 2, 'next to the new current one')
  t.equal(await ring.verificationKey(oldKid), null, 'and no longer trusted')
})

t.test('a replica whose clock is behind verifies what a replica ahead of it signed with the next period\'s key', async (t) => {
  const { store } = await sharedStore(t)
  const cipher = new TokenCipher([randomBytes(32).toString('base64')])
  const behind = { now: 3000 * DAY + DAY - 1_000 }
  const ahead = { now: 3000 * DAY + DAY + 1_000 }
  const slow = new Assertions(replica(store, cipher, behind), ISSUER)
  const fast = new Assertions(replica(store, cipher, ahead), ISSUER)
  await slow.issue(PERSON) // caches the current period before the other replica rotates
  t.equal(await slow.verify(await fast.issue(PERSON)), 'alice')
  t.equal(await fast.verify(await slow.issue(PERSON)), 'alice')
})

t.test('a lost key (Redis emptied) is replaced, and replicas converge on the replacement', async (t) => {
  const { store } = await sharedStore(t)
  const cipher = new TokenCipher([randomBytes(32).toString('base64')])
  const clock = { now: 4000 * DAY + 1_000 }
  const one = replica(store, cipher, clock)
  const two = replica(store, cipher, clock)
  const first = (await one.current()).kid
  t.equal((await two.current()).kid, first)
  await store.delete('assertion:signing-key:4000')
  clock.now += KEY_RECHECK_MS + 1
  const replaced = (await two.current()).kid
  t.not(replaced, first, 'a new key once the old one is gone')
  t.equal((await one.current()).kid, replaced, 'the other replica picks it up instead of keeping its own')
  const assertions = new Assertions(two, ISSUER)
  t.equal(await new Assertions(one, ISSUER).verify(await assertions.issue(PERSON)), 'alice')
})

t.test('kids outside the trusted periods are never looked up', async (t) => {
  const { store } = await sharedStore(t)
  const ring = replica(store, new TokenCipher([randomBytes(32).toString('base64')]), { now: 5000 * DAY })
  for (const kid of ['4990.AAAAAAAAAAA', '5002.AAAAAAAAAAA', '5000.AAAAAAAAAAA', 'x', '../../etc', '5000.' + 'A'.repeat(200)]) {
    t.equal(await ring.verificationKey(kid), null, kid)
  }
})

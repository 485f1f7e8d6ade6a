import type { Test } from 'tap'
import { personIdFor } from '../../src/auth/person.js'
import { signInWithKey } from './person.js'
import { startSidecarStack, type SidecarStack } from './sidecar.js'
import type { Browser } from './stack.js'

/** The administrator of {@link startAdminStack}: the provider's default user, alice. */
export const ADMIN_EMAIL = 'alice@example.com'
/** A CORS origin the admin stack lists (nothing listens there: requests only claim it). */
export const LISTED_ORIGIN = 'https://listed.example.com'

/** A sidecar stack (so assertions exist) whose administrator is alice, with bob as a second person. */
export interface AdminStack extends SidecarStack {
  /** Alice's browser, signed in, and a gateway key of hers. */
  admin: { browser: Browser, key: string, personId: string }
  /** Bob's browser, signed in, and a gateway key of his. */
  bob: { browser: Browser, key: string, keyId: string, personId: string }
}

/** Starts the stack and signs alice (administrator) and bob (not) in, each with a key. */
export async function startAdminStack (t: Test, env: Record<string, string> = {}): Promise<AdminStack> {
  const stack = await startSidecarStack(t, { env: { ADMIN_EMAILS: ADMIN_EMAIL, CORS_ORIGINS: LISTED_ORIGIN, ...env } })
  stack.provider.addUser({ sub: 'bob', email: 'bob@example.com', name: 'Bob' })
  const alice = await signInWithKey(stack)
  const bob = await signInWithKey(stack, { user: 'bob' })
  return {
    ...stack,
    admin: { browser: alice.browser, key: alice.key, personId: alice.personId },
    bob: { browser: bob.browser, key: bob.key, keyId: bob.keyId, personId: personIdFor(stack.provider.issuer, 'bob') },
  }
}

/** What an administrator's own page sends along with a request: the gateway's origin. */
export function sameOrigin (stack: SidecarStack, headers: Record<string, string> = {}): Record<string, string> {
  return { origin: stack.url, ...headers }
}

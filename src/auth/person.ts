import { createHash } from 'node:crypto'
import type { Store } from '../store/store.js'

/** A hash of issuer + sub: the one key for everything stored about a person, never raw input. */
export function personIdFor (issuer: string, sub: string): string {
  return createHash('sha256').update(`${issuer}\n${sub}`).digest('base64url').slice(0, 32)
}

/** What the gateway shows of a person (from the ID token at sign-in). */
export interface Profile {
  sub: string
  email: string
  name: string
  /** Group names from OIDC_GROUPS_CLAIM, when configured. */
  groups?: string[]
  /** Google's `hd` (hosted domain) claim. */
  hostedDomain?: string
}

const profileKey = (personId: string): string => `person:${personId}:profile`

/** Profiles by person id, kept as long as the person has tokens. */
export class ProfileStore {
  constructor (private readonly store: Store) {}

  async save (personId: string, profile: Profile): Promise<void> {
    await this.store.set(profileKey(personId), JSON.stringify(profile))
  }

  async load (personId: string): Promise<Profile | null> {
    const text = await this.store.get(profileKey(personId))
    return text === null ? null : JSON.parse(text) as Profile
  }

  async delete (personId: string): Promise<void> {
    await this.store.delete(profileKey(personId))
  }
}

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { signInWithKey, startProxyStack, type ProxyStack, type ProxyStackOptions } from './person.js'

/** Writes a policy file (YAML text) into the test's own directory and returns its path. */
export function policyFile (t: Test, yaml: string): string {
  const dir = t.testdir({})
  const path = join(dir, 'policy.yaml')
  writeFileSync(path, yaml)
  return path
}

/** A proxy stack whose gateway enforces the policy in `yaml` (POLICY_FILE), groups from the `groups` claim. */
export async function startPolicyStack (t: Test, yaml: string, options: ProxyStackOptions = {}): Promise<ProxyStack> {
  return await startProxyStack(t, { ...options, env: { POLICY_FILE: policyFile(t, yaml), OIDC_GROUPS_CLAIM: 'groups', ...options.env } })
}

/** Polls `read` until `done` says yes (usage is written after the answer), for at most about two seconds. */
export async function eventually<T> (read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let value = await read()
  for (let attempt = 0; attempt < 100 && !done(value); attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    value = await read()
  }
  return value
}

/**
 * A policy stack where owner@example.com has no limits and everyone else a 20,000-token minute:
 * the limited person's key, and a maker of context caches of `words` words of `model` (the owner's).
 */
export async function contextCacheStack (t: Test, model: string): Promise<{ stack: ProxyStack, key: string, cache: (words: number) => Promise<string> }> {
  const stack = await startPolicyStack(t, `policy:
  - name: owner
    match: { emails: ['owner@example.com'] }
  - default: true
    tokens_per_minute: 20000
`)
  stack.provider.addUser({ sub: 'owner', email: 'owner@example.com' })
  const owner = await signInWithKey(stack, { user: 'owner' })
  const holder = await signInWithKey(stack)
  const cache = async (words: number): Promise<string> => {
    const created = await fetch(`${stack.url}/v1beta/cachedContents`, {
      method: 'POST',
      headers: { 'x-goog-api-key': owner.key, 'content-type': 'application/json' },
      body: JSON.stringify({ model: `models/${model}`, contents: [{ role: 'user', parts: [{ text: 'word '.repeat(words) }] }] }),
    })
    if (created.status !== 200) throw new Error(`the cache was not made: ${created.status}`)
    return (await created.json() as { name: string }).name
  }
  return { stack, key: holder.key, cache }
}

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { startProxyStack, type ProxyStack, type ProxyStackOptions } from './person.js'

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

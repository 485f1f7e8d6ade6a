// The policy phase of npm run bench: a second gateway, the same build and the same Redis, with a
// policy whose every limit applies to every call of the bench's person (a rate, a token rate, daily token and dollar
// budgets; each call reserves, then settles in Redis) but is never reached, measured in the same
// rounds as the gateway without a policy. Its figures print as "policy on, key" beside "gateway, key".
// The same gateway also holds a second person whom no rule matches: their calls ("policy gateway,
// key without limits") run the same process with nothing to reserve, so the policy's cost is also
// measured without the difference between two processes (two of the same build differ by up to
// 20% in alternating rounds here: where each one's code and heap landed).
import { writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'

/** Limits far above what a bench run reaches: every check runs, none refuses. */
export const BENCH_POLICY = `policy:
  - name: bench
    match: { emails: ['bench@example.com'] }
    models: ['gemini-*']
    requests_per_minute: 100000000
    tokens_per_minute: 100000000000
    tokens_per_day: 100000000000
    usd_per_day: 1000000
  - name: others
    default: true
`

/** The target name of the policy-on gateway in bench/run.ts's tables. */
export const POLICY_TARGET = 'policy on, key'
/** Calls through the policy-on gateway by a person no rule matches (seeded by bench/gateway.mjs from BENCH_FREE_PERSON). */
export const POLICY_FREE_TARGET = 'policy gateway, key without limits'
const FREE_PERSON = 'bench-free@example.com'

/**
 * Starts the policy-on gateway with `env` (the policy-off gateway's settings) plus POLICY_FILE,
 * through `launch` (run.ts's nodeScript on the proxy core), and waits for its seeded key.
 */
export async function startPolicyGateway (
  dir: string,
  env: Record<string, string>,
  port: number,
  launch: (env: Record<string, string>) => ChildProcess,
  ready: (child: ChildProcess) => Promise<{ port: number, key: string, freeKey: string }>,
): Promise<{ child: ChildProcess, url: string, key: string, freeKey: string }> {
  const file = join(dir, 'bench-policy.yaml')
  await writeFile(file, BENCH_POLICY)
  // BENCH_CPU_PROF=1 profiles this gateway too, into $TMPDIR/gemgate-policy-profiles (run.ts flags the policy-off one only).
  const profile: Record<string, string> = process.env.BENCH_CPU_PROF === '1' ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${join(tmpdir(), 'gemgate-policy-profiles')}` } : {}
  const child = launch({ ...env, ...profile, PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}`, POLICY_FILE: file, BENCH_FREE_PERSON: FREE_PERSON })
  const seeded = await ready(child)
  return { child, url: `http://127.0.0.1:${seeded.port}`, key: seeded.key, freeKey: seeded.freeKey }
}

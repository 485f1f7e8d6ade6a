// npm run bench:compare -- <git ref> : the gateway built from a git ref against the working
// tree's, both loaded at once. On a shared or virtual machine the core's speed comes and goes by
// more than most changes move the figures (the same build's CPU per request moved from 180 to
// 280 µs between rounds a minute apart), so the two builds are not measured one after the other:
// each round loads both at the same time, on the same core, with the same load, and compares
// their CPU time per request and requests per second in that round. Prints per-round ratios
// (new / old) and their medians. BENCH_COMPARE_POLICY=1 runs both under the bench's policy
// (bench/policy.ts: every limit applies to the caller, none is reached).
// npm run bench:compare -- --policy-cost : the working tree without a policy ("old") and with the
// bench's policy ("new"), measured the same way: what an active policy costs a call.
// BENCH_CPU_PROF=1 also writes both gateways' CPU profiles, taken under the same load at the same
// time, to bench/results/profiles/compare-old and compare-new.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { benchGatewayEnv, cpuSeconds, freePort, GATEWAY_FLAGS, message, ROOT } from './launch.js'
import { loadedAtOnce, median, type Call, type PairedTarget } from './load.js'
import { BENCH_POLICY } from './policy.js'

const RESULTS = join(ROOT, 'bench', 'results')
const REF = process.argv[2]
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8)
const SECONDS = 5
const TOKEN = `ya29.bench-${randomBytes(24).toString('base64url')}`
const CALL = { path: '/v1beta/models/gemini-3.8-flash:generateContent', body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'Why is the sky blue?' }] }] }) }
const run = promisify(execFile)
const children: ChildProcess[] = []

const POLICY_COST = REF === '--policy-cost'
if (REF === undefined) {
  process.stderr.write('usage: npm run bench:compare -- <git ref>   (the working tree against that ref)\n       npm run bench:compare -- --policy-cost   (the working tree without and with a policy)\n')
  process.exit(64)
}

/** Builds `src` as of `ref` (or the working tree) into bench/results: inside the checkout, so its imports find node_modules. */
async function build (ref: string | null, name: string): Promise<string> {
  const out = join(RESULTS, name)
  await rm(out, { recursive: true, force: true })
  let project = join(ROOT, 'tsconfig.build.json')
  if (ref !== null) {
    const tree = join(RESULTS, `${name}-src`)
    await rm(tree, { recursive: true, force: true })
    await mkdir(tree, { recursive: true })
    // No shell: the ref is passed to git as one argument, whatever it holds.
    const archive = join(RESULTS, `${name}.tar`)
    await run('git', ['archive', `--output=${archive}`, ref, 'src', 'tsconfig.json', 'tsconfig.build.json'], { cwd: ROOT })
    await run('tar', ['-x', '-f', archive, '-C', tree])
    await rm(archive)
    project = join(tree, 'tsconfig.build.json')
  }
  await run('npx', ['tsc', '-p', project, '--outDir', out], { cwd: ROOT }).catch((error: { stdout?: string }) => {
    throw new Error(`building ${ref ?? 'the working tree'} failed:\n${error.stdout ?? ''}`)
  })
  return out
}

function start (pin: string[], args: string[], env: NodeJS.ProcessEnv, ipc = true): ChildProcess {
  const [file, ...rest] = [...pin, ...args]
  const child = spawn(file!, rest, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit', ...(ipc ? ['ipc' as const] : [])] })
  children.push(child)
  return child
}

async function main (): Promise<void> {
  const cpus = availableParallelism()
  const proxyCore = cpus >= 2 ? ['taskset', '-c', String(cpus - 1)] : []
  const helperCore = cpus >= 2 ? ['taskset', '-c', '0'] : []
  process.stdout.write(POLICY_COST ? 'building the working tree …\n' : `building ${REF!} and the working tree …\n`)
  const newBuild = await build(null, 'compare-new')
  const oldBuild = POLICY_COST ? newBuild : await build(REF!, 'compare-old')
  const dir = await mkdtemp(join(tmpdir(), 'gemgate-compare-'))
  const policyFile = join(dir, 'bench-policy.yaml')
  await writeFile(policyFile, BENCH_POLICY)
  // Which of the two (old, new) runs under the bench's policy.
  const underPolicy = POLICY_COST ? [false, true] : [process.env.BENCH_COMPARE_POLICY === '1', process.env.BENCH_COMPARE_POLICY === '1']
  const redisPort = await freePort()
  start(helperCore, ['redis-server', '--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {}, false)
  const upstream = start(helperCore, [process.execPath, join(ROOT, 'bench', 'upstream.mjs')], { BENCH_TOKEN: TOKEN })
  const upstreamUrl = `http://127.0.0.1:${(await message<{ port: number }>(upstream, 'the fake upstream')).port}`
  await sleep(200)
  const gateways = await Promise.all([oldBuild, newBuild].map(async (buildDir, index) => {
    const port = await freePort()
    // One Redis, a database each.
    const env = benchGatewayEnv({ build: buildDir, token: TOKEN, port, upstreamUrl, redisUrl: `redis://127.0.0.1:${redisPort}/${index}` })
    const profile = process.env.BENCH_CPU_PROF === '1' ? ['--cpu-prof', `--cpu-prof-dir=${join(RESULTS, 'profiles', index === 0 ? 'compare-old' : 'compare-new')}`] : []
    const child = start(proxyCore, [process.execPath, ...GATEWAY_FLAGS, ...profile, join(ROOT, 'bench', 'gateway.mjs')], {
      ...env,
      ...(underPolicy[index]! ? { POLICY_FILE: policyFile } : {}),
    })
    const seeded = await message<{ port: number, key: string }>(child, 'a gateway')
    const call: Call = { origin: `http://127.0.0.1:${seeded.port}`, path: CALL.path, method: 'POST', headers: { 'content-type': 'application/json', 'x-goog-api-key': seeded.key }, body: CALL.body }
    return { child, call }
  }))
  const rounds = await loadedAtOnce(gateways.map(({ child, call }) => ({ call, cpuSeconds: () => cpuSeconds(child.pid) })) as [PairedTarget, PairedTarget],
    { rounds: ROUNDS, connections: 25, seconds: SECONDS, warmupSeconds: 1, dir, pin: helperCore },
    ({ first: before, second: after, rateRatio, cpuRatio }, index) => {
      process.stdout.write(`round ${index + 1}: old ${before.requestsPerSecond} req/s, ${before.cpuUsPerRequest} µs CPU/req; new ${after.requestsPerSecond} req/s, ${after.cpuUsPerRequest} µs CPU/req; new/old req/s ${rateRatio.toFixed(3)}, CPU/req ${cpuRatio.toFixed(3)}\n`)
    })
  const cpuRatios = rounds.map((round) => round.cpuRatio)
  const rateRatios = rounds.map((round) => round.rateRatio)
  process.stdout.write(`\n${POLICY_COST ? 'policy on / policy off' : `new / old (${REF!}${underPolicy[0]! ? ', policy on' : ''})`}, medians of ${ROUNDS} rounds: requests/s ${median(rateRatios).toFixed(3)}, CPU per request ${median(cpuRatios).toFixed(3)} (range ${Math.min(...cpuRatios).toFixed(3)}-${Math.max(...cpuRatios).toFixed(3)})\n`)
  await rm(dir, { recursive: true, force: true })
}

try {
  await main()
} finally {
  // Each gateway closes and exits (writing its profile, when asked for one), for at most 5 s.
  const exited = children.map(async (child) => { if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once('exit', resolve)) })
  for (const child of children) child.kill('SIGTERM')
  await Promise.race([Promise.all(exited), sleep(5_000, undefined, { ref: false })])
}

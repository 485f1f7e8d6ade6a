// npm run bench: the gateway against its baselines, in one bounded run on 127.0.0.1.
// Starts a fake upstream, Redis, the gateway (from a fresh build), a bare @fastify/http-proxy
// and, when it is on PATH, nginx; measures throughput, fixed-rate latency, SSE delays and the
// memory of 1,000 open streams; prints a table and writes bench/results/latest.json.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { heldLines, heldPhase, type HeldLaunch, type HeldProtocol, type HeldRun } from './held.js'
import { benchGatewayEnv, cpuSeconds, freePort, GATEWAY_FLAGS, message, ROOT } from './launch.js'
import { fixedRate, loadedAtOnce, median, sse, wrk, type Call, type FixedRateResult, type PairedRound, type StreamResult, type ThroughputResult } from './load.js'
import { nginxConfig } from './nginx.js'
import { POLICY_FREE_TARGET, POLICY_TARGET, startPolicyGateway } from './policy.js'
import { PORTKEY_TARGET, portkeyCall, portkeyEntry, startPortkey } from './portkey.js'

const RESULTS = join(ROOT, 'bench', 'results')
const BUILD = join(RESULTS, 'dist')
/** The whole run stops itself after this, whatever it is doing. */
const RUN_LIMIT_MS = 12 * 60_000
// Rounds alternate the targets, so a slow spell of the machine spreads over all of them; medians are reported.
const THROUGHPUT = { connections: 50, seconds: 5, warmupSeconds: 1, rounds: Number(process.env.BENCH_ROUNDS ?? 3) }
const FIXED_RATE = { rate: 500, seconds: 5, rounds: 5 }
/** Rounds of the policy-on and policy-off gateways loaded at once (the policy's cost, free of drift). */
const PAIRED_ROUNDS = Number(process.env.BENCH_POLICY_PAIRED_ROUNDS ?? 5)
const SSE = { streams: 20, chunks: 10, intervalMs: 20 }
const HELD = {
  streams: Number(process.env.BENCH_HELD_STREAMS ?? 1000),
  protocols: (process.env.BENCH_HELD_PROTOCOLS ?? 'h2,h1,node-h2').split(',') as HeldProtocol[],
  intervalMs: 1000,
  chunks: 180,
  timeoutMs: 60_000,
  holdMs: 10_000,
}
const TOKEN = `ya29.bench-${randomBytes(24).toString('base64url')}`
const GENERATE = '/v1beta/models/gemini-3.8-flash:generateContent'
const QUESTION = 'Write a sentence about a fox.'
const PROMPT = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: QUESTION }] }] })

/**
 * BENCH_PHASES=throughput,latency,sse,held runs only those; BENCH_ROUNDS sets the throughput rounds (default 3); BENCH_CPU_PROF=1 profiles the gateway (bench/results/profiles);
 * BENCH_POLICY_PAIRED_ROUNDS sets the throughput phase's rounds of the policy-on and policy-off gateways loaded at once (default 5; 0 skips them);
 * burst (with held, BENCH_HELD_PROTOCOLS=main): the bench gateway's throughput right before and after the held streams;
 * BENCH_HELD_STREAMS sets how many streams are held (default 1,000), BENCH_HELD_PROTOCOLS through what (default h2,h1,node-h2:
 * fresh gateways, HTTP/2 or HTTP/1.1 to a TLS upstream, and Node's minimal proxy over HTTP/2 as the baseline; main: the bench's
 * own gateway, before the other phases run on it).
 */
const PHASES = new Set((process.env.BENCH_PHASES ?? 'held,throughput,latency,sse').split(','))
const PROFILE = process.env.BENCH_CPU_PROF === '1'

const children: ChildProcess[] = []

function onPath (command: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => existsSync(join(dir, command))) || existsSync(join('/usr/sbin', command))
}

async function waitForPort (port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const socket = connect(port, '127.0.0.1')
    const connected = await new Promise<boolean>((resolve) => {
      socket.once('connect', () => resolve(true)).once('error', () => resolve(false))
    })
    socket.destroy()
    if (connected) return
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`)
    await sleep(50)
  }
}

/** Starts a child (pinned with taskset when `pin` is given) and keeps it for the final cleanup. */
function start (pin: string[], command: string, args: string[], options: { env?: NodeJS.ProcessEnv, ipc?: boolean } = {}): ChildProcess {
  const [file, ...rest] = [...pin, command, ...args]
  const child = spawn(file!, rest, { cwd: ROOT, env: { ...process.env, ...options.env }, stdio: ['ignore', 'ignore', 'inherit', ...(options.ipc === true ? ['ipc' as const] : [])] })
  children.push(child)
  return child
}

function nodeScript (pin: string[], script: string, env: NodeJS.ProcessEnv, flags: string[] = []): ChildProcess {
  return start(pin, process.execPath, [...flags, join(ROOT, 'bench', script)], { env, ipc: true })
}

/** A gateway (bench/gateway.mjs) with the production flags and any of the bench's own. */
function gatewayScript (pin: string[], env: NodeJS.ProcessEnv, flags: string[] = []): ChildProcess {
  return nodeScript(pin, 'gateway.mjs', env, [...GATEWAY_FLAGS, ...flags])
}

/** Stops every child, and waits (a few seconds at most) until they are gone. */
/** A process's event-loop figures per phase, as printed. */
function loopFigures (loops: Record<string, { maxMs: number, p99Ms: number }>): string {
  return Object.entries(loops).map(([phase, loop]) => `${phase} max ${loop.maxMs} ms (p99 ${loop.p99Ms})`).join(', ')
}

async function cleanup (): Promise<void> {
  const running = children.filter((child) => child.exitCode === null && child.signalCode === null)
  for (const child of running) {
    // A child paused for another's measurement would not act on SIGTERM until resumed.
    child.kill('SIGCONT')
    child.kill('SIGTERM')
  }
  await Promise.race([Promise.all(running.map(async (child) => await once(child, 'exit'))), sleep(5_000)])
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
}

/** Everything one run measured, as written to bench/results/latest.json. */
interface Results {
  at: string
  machine: Record<string, unknown>
  settings: Record<string, unknown>
  throughput: Record<string, ThroughputResult>
  redisPerRequest: Record<string, number>
  latency: Record<string, FixedRateResult>
  streams: Record<string, StreamResult>
  /** One run per upstream protocol. */
  held: HeldRun[]
  /** The gateway's throughput with a key before and after the held streams (the burst phase). */
  burst: Record<string, ThroughputResult>
  /** The gateway's event-loop delay during each phase (max and p99, ms). */
  eventLoop: Record<string, { maxMs: number, p99Ms: number }>
  /** The same for Node's minimal proxy, in the phases it is measured in (throughput, latency): the baseline. */
  nodeProxyEventLoop: Record<string, { maxMs: number, p99Ms: number }>
  ratios: Record<string, number>
}

const ratio = (a: number, b: number): number => Math.round((a / b) * 100) / 100
const cell = (value: number | string, width: number): string => String(value).padStart(width)

async function main (): Promise<void> {
  if (!onPath('wrk')) throw new Error('wrk is not on PATH: apt-get install wrk')
  const cpus = availableParallelism()
  // Each proxy under test gets a core of its own; the load generator, the upstream and Redis share the other.
  const pinned = cpus >= 2 && onPath('taskset')
  const proxyCore = pinned ? ['taskset', '-c', String(cpus - 1)] : []
  const helperCore = pinned ? ['taskset', '-c', '0'] : []
  // This process drives the fixed-rate and SSE runs: it stays off the proxies' core too.
  if (pinned) await promisify(execFile)('taskset', ['-p', '-c', '0', String(process.pid)])

  process.stdout.write(`building the gateway into ${BUILD} …\n`)
  await rm(BUILD, { recursive: true, force: true })
  await promisify(execFile)('npx', ['tsc', '-p', 'tsconfig.build.json', '--outDir', BUILD], { cwd: ROOT }).catch((error: { stdout?: string }) => {
    if (!existsSync(join(BUILD, 'app.js'))) throw new Error(`the build failed:\n${error.stdout ?? ''}`)
  })
  const dir = await mkdtemp(join(tmpdir(), 'gemgate-bench-'))

  const redisPort = await freePort()
  start(helperCore, 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'])
  await waitForPort(redisPort)
  const redis = new Redis(redisPort, '127.0.0.1')

  const upstream = nodeScript(helperCore, 'upstream.mjs', { BENCH_TOKEN: TOKEN })
  const upstreamPort = (await message<{ port: number }>(upstream, 'the fake upstream')).port
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}`

  const gatewayPort = await freePort()
  const gatewayEnv = benchGatewayEnv({ build: BUILD, token: TOKEN, port: gatewayPort, upstreamUrl, redisUrl: `redis://127.0.0.1:${redisPort}` })
  const gateway = gatewayScript(proxyCore, gatewayEnv, PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${join(RESULTS, 'profiles')}`] : [])
  const seeded = await message<{ port: number, key: string, cookie: string }>(gateway, 'the gateway')
  const gatewayUrl = `http://127.0.0.1:${seeded.port}`

  // The same gateway with a policy (bench/policy.ts), in the same rounds.
  const policy = await startPolicyGateway(dir, gatewayEnv, await freePort(), (env) => gatewayScript(proxyCore, env),
    async (child) => await message<{ port: number, key: string, freeKey: string }>(child, 'the policy gateway'))
  const bare = nodeScript(proxyCore, 'bare-proxy.mjs', { BENCH_UPSTREAM_URL: upstreamUrl })
  const bareUrl = `http://127.0.0.1:${(await message<{ port: number }>(bare, 'the bare proxy')).port}`
  const nodeProxy = nodeScript(proxyCore, 'node-proxy.mjs', { BENCH_UPSTREAM_URL: upstreamUrl, BENCH_TOKEN: TOKEN })
  const nodeProxyUrl = `http://127.0.0.1:${(await message<{ port: number }>(nodeProxy, 'the node proxy')).port}`

  /**
   * The event-loop delay (max and p99, ms) per phase of the gateway and of Node's minimal proxy
   * (its baseline: a process saturated by wrk's connections waits for each batch of them), each
   * sampled only while it is measured: it is paused (SIGSTOP) while the others are, and that
   * pause is no stall of its own.
   */
  const eventLoop: Record<string, { maxMs: number, p99Ms: number }> = {}
  const nodeProxyEventLoop: Record<string, { maxMs: number, p99Ms: number }> = {}
  let phase = 'held'
  async function loopOf (child: ChildProcess): Promise<{ maxMs: number, p99Ms: number }> {
    // A plain listener, not message(): that one waits for an exit too, and would leave a listener per call.
    return await new Promise((resolve) => {
      child.once('message', resolve)
      child.send({ type: 'event-loop' })
    })
  }

  const portkey = portkeyEntry(ROOT)
  let portkeyChild: ChildProcess | undefined
  let portkeyUrl: string | undefined
  if (portkey === undefined) {
    process.stdout.write('@portkey-ai/gateway is not installed: its column is skipped (npm ci)\n')
  } else {
    const port = await freePort()
    portkeyChild = startPortkey(portkey, port, (args, env) => start(proxyCore, process.execPath, args, { env }))
    await waitForPort(port)
    portkeyUrl = `http://127.0.0.1:${port}`
  }

  let nginxUrl: string | undefined
  if (onPath('nginx')) {
    const port = await freePort()
    const config = await nginxConfig(dir, port, upstreamPort, TOKEN)
    start(proxyCore, onPath('nginx') && existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx', ['-c', config, '-p', dir])
    await waitForPort(port)
    nginxUrl = `http://127.0.0.1:${port}`
  } else {
    process.stdout.write('nginx is not on PATH: its column is skipped (apt-get install nginx)\n')
  }

  const post = (origin: string, headers: Record<string, string>): Call => ({
    origin, path: GENERATE, method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: PROMPT,
  })
  const bearer = { authorization: `Bearer ${TOKEN}` }
  const targets: Array<[string, Call]> = [
    ['direct', post(upstreamUrl, bearer)],
    ...(nginxUrl === undefined ? [] : [['nginx', post(nginxUrl, {})] as [string, Call]]),
    ['node minimal proxy', post(nodeProxyUrl, {})],
    ['bare @fastify/http-proxy', post(bareUrl, bearer)],
    ['gateway, key', post(gatewayUrl, { 'x-goog-api-key': seeded.key })],
    [POLICY_TARGET, post(policy.url, { 'x-goog-api-key': policy.key })],
    [POLICY_FREE_TARGET, post(policy.url, { 'x-goog-api-key': policy.freeKey })],
    // A browser's fetch from the gateway's own pages: the cookie, and the Origin the CSRF check wants.
    ['gateway, session', post(gatewayUrl, { cookie: seeded.cookie, origin: gatewayUrl })],
    ...(portkeyUrl === undefined ? [] : [[PORTKEY_TARGET, portkeyCall(portkeyUrl, upstreamUrl, TOKEN, 'gemini-3.8-flash', QUESTION)] as [string, Call]]),
  ]

  // Only the process under test runs on the proxy core: an idle Node process still collects
  // garbage and shrinks its heap in the background, which would land in another's figures.
  const proxies: Record<string, ChildProcess> = { gateway, bare, node: nodeProxy, policy: policy.child, ...(portkeyChild === undefined ? {} : { portkey: portkeyChild }) }
  const owner = (name: string): string | undefined => name.startsWith('gateway') ? 'gateway' : name.startsWith('bare') ? 'bare' : name.startsWith('node') ? 'node' : name === POLICY_TARGET || name === POLICY_FREE_TARGET ? 'policy' : name === PORTKEY_TARGET ? 'portkey' : undefined
  /** Pauses every proxy but `kept` (their owners' names); the paused ones, to resume. */
  const pauseAllBut = (kept: ReadonlyArray<string | undefined>): ChildProcess[] => {
    const paused = Object.entries(proxies).filter(([key]) => !kept.includes(key)).map(([, child]) => child)
    for (const child of paused) child.kill('SIGSTOP')
    return paused
  }
  async function alone<T> (name: string, measure: () => Promise<T>): Promise<T> {
    const paused = pauseAllBut([owner(name)])
    const sampled = ({ gateway: { child: gateway, loops: eventLoop }, node: { child: nodeProxy, loops: nodeProxyEventLoop } } as const)[owner(name) as 'gateway' | 'node']
    try {
      // Starts the event-loop figures afresh, past the delay the process's own pause left.
      if (sampled !== undefined) await loopOf(sampled.child)
      return await measure()
    } finally {
      if (sampled !== undefined) {
        const loop = await loopOf(sampled.child)
        const before = sampled.loops[phase]
        sampled.loops[phase] = { maxMs: Math.max(loop.maxMs, before?.maxMs ?? 0), p99Ms: Math.max(loop.p99Ms, before?.p99Ms ?? 0) }
      }
      for (const child of paused) child.kill('SIGCONT')
    }
  }

  const keyCall = post(gatewayUrl, { 'x-goog-api-key': seeded.key })
  const streamPath = (chunks: number, intervalMs: number): string => `/v1beta/models/gemini-3.8-flash:streamGenerateContent?alt=sse&chunks=${chunks}&interval=${intervalMs}`

  // BENCH_PHASES=burst: the gateway's throughput with a key right before the held streams and right after them.
  const burst: Record<string, ThroughputResult> = {}
  const keyThroughput = async (warmupSeconds: number): Promise<ThroughputResult> => await alone('gateway', async () => await wrk(keyCall, { ...THROUGHPUT, warmupSeconds, dir, pin: helperCore, cpuSeconds: () => cpuSeconds(gateway.pid) }))
  if (PHASES.has('burst')) {
    phase = 'burst'
    process.stdout.write('throughput before the burst: gateway, key …\n')
    // A longer warm-up: the figure after the burst is taken from a process warmed by this one.
    burst.before = await keyThroughput(5)
    phase = 'held'
  }

  // First: what many open streams cost on top of a gateway at rest. Fresh gateways run with every
  // other proxy paused; "main" is the bench's own gateway, measured alone as in the other phases.
  const held: HeldRun[] = []
  if (PHASES.has('held')) {
    const launch: HeldLaunch = {
      upstream: async (env) => {
        const child = nodeScript(helperCore, 'upstream.mjs', { BENCH_TOKEN: TOKEN, ...env })
        return { child, port: (await message<{ port: number }>(child, 'the held fake upstream')).port }
      },
      gateway: async (env) => {
        const child = gatewayScript(proxyCore, env)
        return { child, ...await message<{ port: number, key: string }>(child, 'the held gateway') }
      },
      nodeProxy: async (env) => {
        const child = nodeScript(proxyCore, 'node-proxy.mjs', env)
        return { child, port: (await message<{ port: number }>(child, 'the held node proxy')).port, key: '' }
      },
      main: { gateway: { child: gateway, port: seeded.port, key: seeded.key }, upstream: { child: upstream, port: upstreamPort } },
    }
    const log = (line: string): void => { process.stdout.write(`${line}\n`) }
    const fresh = HELD.protocols.filter((protocol) => protocol !== 'main')
    const settings = { ...HELD, path: streamPath(HELD.chunks, HELD.intervalMs) }
    if (fresh.length > 0) held.push(...await alone('held', async () => await heldPhase({ ...settings, protocols: fresh }, gatewayEnv, freePort, launch, log)))
    if (HELD.protocols.includes('main')) held.push(...await alone('gateway', async () => await heldPhase({ ...settings, protocols: ['main'] }, gatewayEnv, freePort, launch, log)))
    for (const run of held) eventLoop[`held ${run.protocol}`] = run.eventLoop
    // BENCH_SETTLE_MS: a pause after the burst, to tell a lasting slowdown from one that passes.
    await new Promise((resolve) => setTimeout(resolve, Number(process.env.BENCH_SETTLE_MS ?? 0)))
  }
  if (PHASES.has('burst')) {
    phase = 'burst'
    process.stdout.write('throughput after the burst: gateway, key …\n')
    burst.after = await keyThroughput(THROUGHPUT.warmupSeconds)
  }

  phase = 'throughput'
  const throughput: Record<string, ThroughputResult> = {}
  // Redis commands per request, from INFO commandstats around each run (warm-up included).
  const redisPerRequest: Record<string, number> = {}
  const runs: Record<string, ThroughputResult[]> = {}
  const commands: Record<string, number[]> = {}
  for (let round = 1; round <= (PHASES.has('throughput') ? THROUGHPUT.rounds : 0); round++) {
    for (const [name, call] of targets) {
      process.stdout.write(`throughput, round ${round}/${THROUGHPUT.rounds}: ${name} …\n`)
      const before = await redisCommands(redis)
      const child = proxies[owner(name) ?? '']
      const result = await alone(name, async () => await wrk(call, { ...THROUGHPUT, dir, pin: helperCore, cpuSeconds: () => cpuSeconds(child?.pid) }))
      const requests = result.requestsPerSecond * (THROUGHPUT.seconds + THROUGHPUT.warmupSeconds)
      ;(runs[name] ??= []).push(result)
      ;(commands[name] ??= []).push(((await redisCommands(redis)) - before) / requests)
    }
  }
  for (const [name, results] of Object.entries(runs)) {
    throughput[name] = {
      requestsPerSecond: median(results.map((result) => result.requestsPerSecond)),
      p50Ms: median(results.map((result) => result.p50Ms)),
      p99Ms: median(results.map((result) => result.p99Ms)),
      failures: results.reduce((sum, result) => sum + result.failures, 0),
      cpuUsPerRequest: median(results.map((result) => result.cpuUsPerRequest)),
    }
    redisPerRequest[name] = Math.round(median(commands[name]!) * 1000) / 1000
  }

  // The policy's cost as bench:compare -- --policy-cost measures it: the gateway without a policy
  // and the one with it loaded at once on the proxy core, so the machine's drift between rounds
  // (which the alternating rounds above cannot tell from a cost) lands on both.
  async function policyLoadedAtOnce (): Promise<PairedRound[]> {
    const paused = pauseAllBut(['gateway', 'policy'])
    try {
      return await loadedAtOnce([
        { call: keyCall, cpuSeconds: () => cpuSeconds(gateway.pid) },
        { call: post(policy.url, { 'x-goog-api-key': policy.key }), cpuSeconds: () => cpuSeconds(policy.child.pid) },
      ], { rounds: PAIRED_ROUNDS, connections: THROUGHPUT.connections / 2, seconds: THROUGHPUT.seconds, warmupSeconds: THROUGHPUT.warmupSeconds, dir, pin: helperCore },
      ({ rateRatio, cpuRatio }, index) => { process.stdout.write(`policy on and off loaded at once, round ${index + 1}/${PAIRED_ROUNDS}: on/off req/s ${rateRatio.toFixed(3)}, CPU per request ${cpuRatio.toFixed(3)}\n`) })
    } finally {
      for (const child of paused) child.kill('SIGCONT')
    }
  }
  const paired = PHASES.has('throughput') && PAIRED_ROUNDS > 0 ? await policyLoadedAtOnce() : []

  // Like throughput: rounds alternate the targets, and each figure is the median over the rounds.
  phase = 'latency'
  const latency: Record<string, FixedRateResult> = {}
  const latencyRuns: Record<string, FixedRateResult[]> = {}
  // Portkey is a throughput baseline only (issue 18: the gateway at 10x or more); it would add minutes here.
  const latencyTargets = targets.filter(([name]) => name !== 'gateway, session' && name !== PORTKEY_TARGET)
  for (let round = 1; round <= (PHASES.has('latency') ? FIXED_RATE.rounds : 0); round++) {
    for (const [name, call] of latencyTargets) {
      process.stdout.write(`fixed rate ${FIXED_RATE.rate}/s, round ${round}/${FIXED_RATE.rounds}: ${name} …\n`)
      ;(latencyRuns[name] ??= []).push(await alone(name, async () => await fixedRate(call, FIXED_RATE.rate, FIXED_RATE.seconds, helperCore)))
    }
  }
  for (const [name, results] of Object.entries(latencyRuns)) {
    latency[name] = {
      rate: FIXED_RATE.rate,
      sent: results.reduce((sum, result) => sum + result.sent, 0),
      p50Ms: median(results.map((result) => result.p50Ms)),
      p90Ms: median(results.map((result) => result.p90Ms)),
      p99Ms: median(results.map((result) => result.p99Ms)),
      maxMs: Math.max(...results.map((result) => result.maxMs)),
      failures: results.reduce((sum, result) => sum + result.failures, 0),
    }
  }

  const streams: Record<string, StreamResult> = {}
  phase = 'sse'
  if (PHASES.has('sse')) {
    process.stdout.write('SSE: direct, gateway …\n')
    streams.direct = await alone('direct', async () => await sse({ ...targets[0]![1], path: streamPath(SSE.chunks, SSE.intervalMs) }, SSE.streams, SSE.chunks))
    streams.gateway = await alone('gateway', async () => await sse({ ...keyCall, path: streamPath(SSE.chunks, SSE.intervalMs) }, SSE.streams, SSE.chunks))
  }

  const rps = (name: string): number => throughput[name]?.requestsPerSecond ?? Number.NaN
  // Each round's ratio of two targets measured back to back, then their median: a slow spell of the machine cancels out.
  const perRound = (a: string, b: string, figure: (result: ThroughputResult) => number): number => {
    const ratios = (runs[a] ?? []).map((result, round) => figure(result) / figure(runs[b]![round]!))
    return ratios.length === 0 ? Number.NaN : Math.round(median(ratios) * 100) / 100
  }
  const difference = (a: number | undefined, b: number | undefined): number => Math.round(((a ?? Number.NaN) - (b ?? Number.NaN)) * 100) / 100
  const results: Results = {
    at: new Date().toISOString(),
    machine: { cpus, node: process.version, gatewayFlags: GATEWAY_FLAGS.join(' '), pinned, proxyCore: proxyCore.at(-1) ?? 'any', helperCore: helperCore.at(-1) ?? 'any' },
    settings: { THROUGHPUT, FIXED_RATE, SSE, HELD },
    throughput,
    redisPerRequest,
    latency,
    streams,
    held,
    burst,
    eventLoop,
    nodeProxyEventLoop,
    ratios: {
      keyVsNodeProxy: ratio(rps('gateway, key'), rps('node minimal proxy')),
      keyVsNginx: ratio(rps('gateway, key'), rps('nginx')),
      keyVsPortkey: ratio(rps('gateway, key'), rps(PORTKEY_TARGET)),
      keyVsBareProxy: ratio(rps('gateway, key'), rps('bare @fastify/http-proxy')),
      sessionVsBareProxy: ratio(rps('gateway, session'), rps('bare @fastify/http-proxy')),
      addedP99Ms: difference(latency['gateway, key']?.p99Ms, latency.direct?.p99Ms),
      policyOnVsOff: ratio(rps(POLICY_TARGET), rps('gateway, key')),
      policyOnVsOffPerRound: perRound(POLICY_TARGET, 'gateway, key', (result) => result.requestsPerSecond),
      policyCpuPerRequestVsOff: perRound(POLICY_TARGET, 'gateway, key', (result) => result.cpuUsPerRequest),
      policyOnVsOffLoadedAtOnce: paired.length === 0 ? Number.NaN : Math.round(median(paired.map((round) => round.rateRatio)) * 100) / 100,
      policyCpuPerRequestVsOffLoadedAtOnce: paired.length === 0 ? Number.NaN : Math.round(median(paired.map((round) => round.cpuRatio)) * 100) / 100,
      policyOnVsNoLimitsSameGatewayPerRound: perRound(POLICY_TARGET, POLICY_FREE_TARGET, (result) => result.requestsPerSecond),
      policyCpuPerRequestVsNoLimitsSameGateway: perRound(POLICY_TARGET, POLICY_FREE_TARGET, (result) => result.cpuUsPerRequest),
      keyVsNodeProxyPerRound: perRound('gateway, key', 'node minimal proxy', (result) => result.requestsPerSecond),
      keyCpuPerRequestVsNodeProxy: perRound('gateway, key', 'node minimal proxy', (result) => result.cpuUsPerRequest),
      policyAddedP99Ms: difference(latency[POLICY_TARGET]?.p99Ms, latency['gateway, key']?.p99Ms),
      afterBurstVsBefore: ratio(burst.after?.requestsPerSecond ?? Number.NaN, burst.before?.requestsPerSecond ?? Number.NaN),
      addedTtfbMs: difference(streams.gateway?.ttfbP50Ms, streams.direct?.ttfbP50Ms),
      addedChunkDelayP50Ms: difference(streams.gateway?.chunkDelayP50Ms, streams.direct?.chunkDelayP50Ms),
      addedChunkDelayMaxMs: difference(streams.gateway?.chunkDelayMaxMs, streams.direct?.chunkDelayMaxMs),
    },
  }
  await mkdir(RESULTS, { recursive: true })
  await writeFile(join(RESULTS, 'latest.json'), JSON.stringify(results, null, 2) + '\n')
  print(results)
  redis.disconnect()
  await rm(dir, { recursive: true, force: true })
}

/** Commands Redis has run so far (all kinds, from INFO commandstats). */
async function redisCommands (redis: Redis): Promise<number> {
  const stats = await redis.info('commandstats')
  return [...stats.matchAll(/calls=(\d+)/g)].reduce((sum, match) => sum + Number(match[1]), 0)
}

function print (results: Results): void {
  const lines = [
    '',
    `machine: ${JSON.stringify(results.machine)}`,
    '',
    `non-streaming generateContent, wrk -t1 -c${THROUGHPUT.connections} -d${THROUGHPUT.seconds}s, median of ${THROUGHPUT.rounds} alternating rounds`,
    `${'target'.padEnd(26)}${cell('req/s', 9)}${cell('p50 ms', 9)}${cell('p99 ms', 9)}${cell('failed', 8)}${cell('redis/req', 11)}${cell('cpu µs/req', 12)}`,
    ...Object.entries(results.throughput).map(([name, r]) => `${name.padEnd(26)}${cell(r.requestsPerSecond, 9)}${cell(r.p50Ms, 9)}${cell(r.p99Ms, 9)}${cell(r.failures, 8)}${cell(results.redisPerRequest[name] ?? '', 11)}${cell(Number.isNaN(r.cpuUsPerRequest) ? '' : r.cpuUsPerRequest, 12)}`),
    '',
    `fixed rate ${FIXED_RATE.rate} req/s for ${FIXED_RATE.seconds}s after 1s of warm-up, median of ${FIXED_RATE.rounds} alternating rounds (max: over all rounds)`,
    `${'target'.padEnd(26)}${cell('p50 ms', 9)}${cell('p99 ms', 9)}${cell('max ms', 9)}${cell('failed', 8)}`,
    ...Object.entries(results.latency).map(([name, r]) => `${name.padEnd(26)}${cell(r.p50Ms, 9)}${cell(r.p99Ms, 9)}${cell(r.maxMs, 9)}${cell(r.failures, 8)}`),
    '',
    `SSE, ${SSE.streams} streams x ${SSE.chunks} chunks every ${SSE.intervalMs} ms`,
    `${'target'.padEnd(26)}${cell('ttfb p50', 10)}${cell('chunk delay p50', 17)}${cell('max', 8)}${cell('chunks', 10)}`,
    ...Object.entries(results.streams).map(([name, r]) => `${name.padEnd(26)}${cell(r.ttfbP50Ms, 10)}${cell(r.chunkDelayP50Ms, 17)}${cell(r.chunkDelayMaxMs, 8)}${cell(`${r.chunksSeen}/${r.chunksExpected}`, 10)}`),
    '',
    ...heldLines(results.held),
    ...Object.entries(results.burst).map(([when, r]) => `gateway, key, ${when} the burst: ${r.requestsPerSecond} req/s, p99 ${r.p99Ms} ms, ${r.failures} failed`),
    '',
    `gateway event loop, per phase: ${loopFigures(results.eventLoop)}`,
    `node minimal proxy event loop (the baseline), per phase: ${loopFigures(results.nodeProxyEventLoop)}`,
    '',
    ...(Number.isNaN(results.ratios.policyOnVsOffLoadedAtOnce) ? [] : [`policy on / policy off, both loaded at once (medians of ${PAIRED_ROUNDS} rounds): requests/s ${results.ratios.policyOnVsOffLoadedAtOnce}, CPU per request ${results.ratios.policyCpuPerRequestVsOffLoadedAtOnce}`, '']),
    `ratios: ${JSON.stringify(results.ratios)}`,
    `written to ${join(RESULTS, 'latest.json')}`,
    '',
  ]
  process.stdout.write(lines.join('\n'))
}

const limit = setTimeout(() => {
  process.stderr.write(`bench: still running after ${RUN_LIMIT_MS / 1000} s; stopping\n`)
  void cleanup().finally(() => process.exit(1))
}, RUN_LIMIT_MS)
process.once('SIGINT', () => { void cleanup().finally(() => process.exit(130)) })
try {
  await main()
} catch (error) {
  process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`)
  process.exitCode = 1
} finally {
  clearTimeout(limit)
  await cleanup()
}

import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { Pool } from 'undici'

/** One HTTP call the load generators repeat. */
export interface Call {
  origin: string
  path: string
  method: 'GET' | 'POST'
  headers: Record<string, string>
  body?: string
}

/** What a saturating run measured. */
export interface ThroughputResult {
  requestsPerSecond: number
  p50Ms: number
  p99Ms: number
  /** Responses that were not 2xx, plus socket errors: a run with any is not a valid figure. */
  failures: number
  /**
   * CPU time the process under test spent per request (all its threads, µs), when the caller can
   * read it: steadier than requests/s on a shared machine, where the core's speed comes and goes.
   */
  cpuUsPerRequest: number
}

function milliseconds (text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim())
  if (match === null) return Number.NaN
  const value = Number(match[1])
  return value * ({ us: 0.001, ms: 1, s: 1000, m: 60_000 } as Record<string, number>)[match[2]!]!
}

/**
 * Saturates `call` with wrk (one thread, `connections` keep-alive connections) for `seconds`
 * after a warm-up, pinned to `cpus` when taskset is there. wrk, written in C, costs the shared
 * core far less per request than a Node load generator would.
 */
export async function wrk (call: Call, options: { connections: number, seconds: number, warmupSeconds: number, dir: string, pin: string[], cpuSeconds?: () => number }): Promise<ThroughputResult> {
  const script = join(options.dir, `wrk-${Math.random().toString(36).slice(2)}.lua`)
  await writeFile(script, [
    `wrk.method = ${JSON.stringify(call.method)}`,
    `wrk.body = ${JSON.stringify(call.body ?? '')}`,
    ...Object.entries(call.headers).map(([name, value]) => `wrk.headers[${JSON.stringify(name)}] = ${JSON.stringify(value)}`),
  ].join('\n'))
  const url = call.origin + call.path
  const run = async (seconds: number) => await promisify(execFile)(options.pin[0] ?? 'wrk', [...options.pin.slice(1), ...(options.pin.length > 0 ? ['wrk'] : []),
    '-t1', `-c${options.connections}`, `-d${seconds}s`, '--timeout', '5s', '--latency', '-s', script, url], { timeout: (seconds + 20) * 1000 })
  await run(options.warmupSeconds)
  const cpuBefore = options.cpuSeconds?.() ?? Number.NaN
  const { stdout } = await run(options.seconds)
  const cpu = (options.cpuSeconds?.() ?? Number.NaN) - cpuBefore
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? Number.NaN)
  const percentile = (label: string) => milliseconds(new RegExp(`^\\s+${label}%\\s+(\\S+)`, 'm').exec(stdout)?.[1] ?? '')
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout)
  const failed = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0) + (socketErrors === null ? 0 : socketErrors.slice(1).reduce((sum, count) => sum + Number(count), 0))
  return {
    requestsPerSecond: Math.round(Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? Number.NaN)),
    p50Ms: percentile('50'),
    p99Ms: percentile('99'),
    failures: failed,
    cpuUsPerRequest: Math.round(cpu * 1e7 / requests) / 10,
  }
}

/** The middle value (the upper one of an even count). */
export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

/** One of two proxies loaded at once: the call to repeat, and its process (for its CPU time). */
export interface PairedTarget { call: Call, cpuSeconds: () => number }

/** One round of two proxies loaded at once: each one's figures, and the second's over the first's. */
export interface PairedRound { first: ThroughputResult, second: ThroughputResult, rateRatio: number, cpuRatio: number }

/**
 * Two proxies on one core, each saturated by its own wrk at the same time, `rounds` times. On a
 * virtual machine the core's speed comes and goes by more than most differences between two
 * builds (or a policy's cost): measured one after the other, either can come out ahead; loaded
 * at once, whatever the core does, it does to both. A round with failed requests throws.
 */
export async function loadedAtOnce (targets: readonly [PairedTarget, PairedTarget],
  options: { rounds: number, connections: number, seconds: number, warmupSeconds: number, dir: string, pin: string[] },
  onRound: (round: PairedRound, index: number) => void = () => {}): Promise<PairedRound[]> {
  const { rounds: count, ...load } = options
  const rounds: PairedRound[] = []
  for (let index = 0; index < count; index++) {
    const [first, second] = await Promise.all(targets.map(async ({ call, cpuSeconds }) => await wrk(call, { ...load, cpuSeconds })))
    if (first!.failures + second!.failures > 0) throw new Error(`round ${index + 1} of two loaded at once: failed requests (${first!.failures}, ${second!.failures})`)
    const round = { first: first!, second: second!, rateRatio: second!.requestsPerSecond / first!.requestsPerSecond, cpuRatio: second!.cpuUsPerRequest / first!.cpuUsPerRequest }
    rounds.push(round)
    onRound(round, index)
  }
  return rounds
}

/** Latency percentiles of a fixed-rate run. */
export interface FixedRateResult {
  rate: number
  sent: number
  p50Ms: number
  p90Ms: number
  p99Ms: number
  maxMs: number
  failures: number
}

export function percentile (sorted: number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)]!
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000

/**
 * Sends `call` at a fixed rate from bench/fixed-rate.mjs, a process of its own on the helper
 * core (see there for how requests are timed), and gives the latency percentiles.
 */
export async function fixedRate (call: Call, rate: number, seconds: number, pin: string[]): Promise<FixedRateResult> {
  const [file, ...args] = [...pin, process.execPath, join(import.meta.dirname, 'fixed-rate.mjs')]
  const child = spawn(file!, args, { env: { ...process.env, BENCH_CALL: JSON.stringify({ call, rate, seconds }) }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  const [{ latencies, failures }] = await Promise.race([
    once(child, 'message') as Promise<[{ latencies: number[], failures: number }]>,
    once(child, 'exit').then(([code]) => { throw new Error(`the fixed-rate generator exited (${String(code)})`) }),
    sleep((seconds + 30) * 1000).then(() => { child.kill(); throw new Error('the fixed-rate generator did not finish') }),
  ])
  latencies.sort((a, b) => a - b)
  return {
    rate,
    sent: rate * seconds,
    p50Ms: round(percentile(latencies, 0.5)),
    p90Ms: round(percentile(latencies, 0.9)),
    p99Ms: round(percentile(latencies, 0.99)),
    maxMs: round(latencies.at(-1) ?? Number.NaN),
    failures,
  }
}

/** What SSE streams measured: time to first byte, and how late each chunk arrived after the upstream wrote it. */
export interface StreamResult {
  streams: number
  ttfbP50Ms: number
  ttfbMaxMs: number
  /** Chunk arrival minus the upstream's write time, over every chunk of every stream. */
  chunkDelayP50Ms: number
  chunkDelayP99Ms: number
  chunkDelayMaxMs: number
  chunksSeen: number
  chunksExpected: number
}

/**
 * Opens `streams` SSE streams one after another; each chunk carries the wall-clock time the
 * upstream wrote it (same machine, same clock), so its delay on the way is measured directly.
 */
export async function sse (call: Call, streams: number, chunks: number): Promise<StreamResult> {
  const pool = new Pool(call.origin, { connections: 1 })
  const ttfb: number[] = []
  const delays: number[] = []
  let chunksSeen = 0
  for (let stream = 0; stream < streams; stream++) {
    const sent = performance.now()
    const response = await pool.request({ method: call.method, path: call.path, headers: call.headers, body: call.body ?? null })
    let first = true
    let pending = ''
    for await (const chunk of response.body) {
      const arrived = performance.timeOrigin + performance.now()
      if (first) {
        ttfb.push(performance.now() - sent)
        first = false
      }
      const { times, rest } = stamps(pending + (chunk as Buffer).toString('utf8'))
      pending = rest
      for (const time of times) delays.push(arrived - time)
      chunksSeen += times.length
    }
  }
  await pool.close()
  ttfb.sort((a, b) => a - b)
  delays.sort((a, b) => a - b)
  return {
    streams,
    ttfbP50Ms: round(percentile(ttfb, 0.5)),
    ttfbMaxMs: round(ttfb.at(-1) ?? Number.NaN),
    chunkDelayP50Ms: round(percentile(delays, 0.5)),
    chunkDelayP99Ms: round(percentile(delays, 0.99)),
    chunkDelayMaxMs: round(delays.at(-1) ?? Number.NaN),
    chunksSeen,
    chunksExpected: streams * chunks,
  }
}

/** A process's resident set, in MB, from /proc. */
export async function rssMb (pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises')
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Math.round(Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) / 102.4) / 10
}

/** What holding many streams open measured. */
export interface HeldStreamsResult {
  streams: number
  opened: number
  rssIdleMb: number
  rssHoldingMb: number
  /** Time until every stream had its first byte. */
  openAllMs: number
  /** Over the hold: chunk arrival minus the upstream's write time, every chunk of every stream. */
  chunkDelayP50Ms: number
  chunkDelayP99Ms: number
  chunkDelayMaxMs: number
  chunksSeen: number
  /** Sockets the process had open while holding them (clients, upstream connections, Redis). */
  sockets: number
}

/** The write times (`"t":…`) of the complete SSE events in `text`; what follows the last one is left in `rest`. */
function stamps (text: string): { times: number[], rest: string } {
  const events = text.split('\r\n\r\n')
  const rest = events.pop() ?? ''
  const times: number[] = []
  for (const event of events) {
    const stamp = /"t":([\d.]+)/.exec(event)?.[1]
    if (stamp !== undefined) times.push(Number(stamp))
  }
  return { times, rest }
}

/** How many sockets a process has open, from /proc/<pid>/fd. */
export async function socketCount (pid: number): Promise<number> {
  const { readdir, readlink } = await import('node:fs/promises')
  const dir = `/proc/${pid}/fd`
  const links = await Promise.all((await readdir(dir)).map(async (fd) => await readlink(`${dir}/${fd}`).catch(() => '')))
  return links.filter((link) => link.startsWith('socket:')).length
}

/** Streams being opened at once by holdStreams: 10,000 connects at once overflow the gateway's accept queue (SYNs dropped, retried a second later). */
const OPENING = 500

/**
 * Opens `count` SSE streams, OPENING at a time, and waits until each has its first chunk; then holds them
 * for `holdMs`, reading every chunk as a live client would and timing it against the upstream's
 * write stamp (as sse() does), and reads the process's RSS and sockets while they are all open;
 * then aborts them.
 */
export async function holdStreams (call: Call, count: number, pid: number, options: { timeoutMs: number, holdMs: number, whileHeld?: () => Promise<void> }): Promise<HeldStreamsResult> {
  const rssIdleMb = await rssMb(pid)
  const pool = new Pool(call.origin, { connections: count + 10, pipelining: 1, connectTimeout: options.timeoutMs })
  const abort = new AbortController()
  const delays: number[] = []
  let holding = false
  let opened = 0
  const started = performance.now()
  let next = 0
  const open = async (): Promise<void> => {
    const response = await pool.request({ method: call.method, path: call.path, headers: call.headers, body: call.body ?? null, signal: abort.signal })
    const iterator = response.body[Symbol.asyncIterator]()
    await iterator.next()
    opened++
    void (async () => {
      let pending = ''
      try {
        for (let read = await iterator.next(); read.done !== true; read = await iterator.next()) {
          const arrived = performance.timeOrigin + performance.now()
          const { times, rest } = stamps(pending + (read.value as Buffer).toString('utf8'))
          pending = rest
          if (holding) for (const time of times) delays.push(arrived - time)
        }
      } catch {}
    })()
  }
  const allOpen = Promise.all(Array.from({ length: Math.min(OPENING, count) }, async () => {
    while (next < count) {
      next++
      // One that fails is left out: `opened` says how many were held.
      await open().catch(() => {})
    }
  }))
  const openAllMs = await Promise.race([allOpen.then(() => performance.now() - started), sleep(options.timeoutMs).then(() => Number.NaN)])
  holding = true
  await sleep(options.holdMs)
  holding = false
  const [rssHoldingMb, sockets] = await Promise.all([rssMb(pid), socketCount(pid), options.whileHeld?.()])
  abort.abort()
  await allOpen.catch(() => {})
  await pool.destroy()
  delays.sort((a, b) => a - b)
  return {
    streams: count,
    opened,
    rssIdleMb,
    rssHoldingMb,
    openAllMs: round(openAllMs),
    chunkDelayP50Ms: round(percentile(delays, 0.5)),
    chunkDelayP99Ms: round(percentile(delays, 0.99)),
    chunkDelayMaxMs: round(delays.at(-1) ?? Number.NaN),
    chunksSeen: delays.length,
    sockets,
  }
}

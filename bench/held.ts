// The "held" phase of npm run bench: many SSE streams held open through one gateway, once per
// upstream protocol. Each protocol gets a fresh fake upstream speaking TLS (h2 offered by ALPN,
// with a test CA made at the start, as the tests make theirs) and a fresh gateway trusting it
// through UPSTREAM_CA_FILE, so its RSS at rest is a gateway's at rest. Over HTTP/1.1 (the same
// upstream, UPSTREAM_HTTP2=false) the gateway needs a client and an upstream socket per stream:
// that run holds at most H1_MAX_STREAMS, which fits the 20,000 descriptors a process may have.
// "main" holds them through the bench's own gateway (plain HTTP/1.1 upstream) instead, so the
// phases after it run on a gateway that has just served the burst (see BENCH_SETTLE_MS).
// "node-h2" holds them through Node's minimal proxy (bench/node-proxy.mjs) over HTTP/2 to the
// same kind of upstream: the baseline for what a stream costs a Node process at all.
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { rm } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { selfSignedCert } from '../test/fixtures/tls.js'
import { holdStreams, type Call, type HeldStreamsResult } from './load.js'

/** What one protocol's run measured. */
export interface HeldRun extends HeldStreamsResult {
  protocol: HeldProtocol
  /** Connections the fake upstream held open while the streams were (gateway to upstream). */
  upstreamConnections: number
  /** The held gateway's event-loop delay over the run (ms). */
  eventLoop: { maxMs: number, p99Ms: number }
}

export type HeldProtocol = 'h2' | 'h1' | 'main' | 'node-h2'

/** A gateway and the fake upstream behind it. */
interface Pair {
  gateway: { child: ChildProcess, port: number, key: string }
  upstream: { child: ChildProcess, port: number }
}

/** Descriptors a process may open here (`ulimit -Hn`) less room for everything else, halved: a client and an upstream socket per stream. */
const H1_MAX_STREAMS = Number(process.env.BENCH_HELD_H1_STREAMS ?? 9000)
const STOP_MS = 10_000

/** How run.ts starts a measured process: a node script with this environment, and its first IPC message. */
export interface HeldLaunch {
  upstream: (env: Record<string, string>) => Promise<Pair['upstream']>
  gateway: (env: Record<string, string>) => Promise<Pair['gateway']>
  /** Node's minimal proxy, for "node-h2" (its `key` is unused). */
  nodeProxy: (env: Record<string, string>) => Promise<Pair['gateway']>
  /** The bench's own gateway and upstream, for "main". */
  main: Pair
}

export interface HeldSettings {
  protocols: HeldProtocol[]
  streams: number
  /** The upstream's streaming query (chunks, interval), appended to the streaming path. */
  path: string
  timeoutMs: number
  holdMs: number
}

async function ask<T> (child: ChildProcess, type: string): Promise<T> {
  return await new Promise((resolve) => {
    const listener = (message: { type?: string }): void => {
      if (message?.type !== type) return
      child.off('message', listener)
      resolve(message as T)
    }
    child.on('message', listener)
    child.send({ type })
  })
}

/** Stops a held gateway or upstream; one still there after STOP_MS (a close waiting on thousands of connections) is killed. */
async function stop (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGTERM')
  const exited = once(child, 'exit')
  if (await Promise.race([exited.then(() => true), sleep(STOP_MS).then(() => false)])) return
  child.kill('SIGKILL')
  await exited
}

/** Holds the streams through a fresh upstream and gateway for each protocol, one after the other. */
export async function heldPhase (settings: HeldSettings, gatewayEnv: Record<string, string>, freePort: () => Promise<number>, launch: HeldLaunch, log: (line: string) => void): Promise<HeldRun[]> {
  const cert = await selfSignedCert()
  const runs: HeldRun[] = []
  try {
    for (const protocol of settings.protocols) {
      const streams = protocol === 'h2' || protocol === 'node-h2' ? settings.streams : Math.min(settings.streams, H1_MAX_STREAMS)
      const through = { main: 'the gateway', 'node-h2': 'Node\'s minimal proxy', h2: 'a fresh gateway', h1: 'a fresh gateway' }[protocol]
      log(`holding ${streams} streams open through ${through}, ${protocol === 'h1' || protocol === 'main' ? 'HTTP/1.1' : 'HTTP/2'} to the upstream …`)
      const pair = protocol === 'main' ? launch.main : await freshPair(protocol, cert, freePort, gatewayEnv, launch)
      try {
        runs.push({ protocol, ...await hold(pair, streams, settings) })
      } finally {
        if (protocol !== 'main') await Promise.all([stop(pair.gateway.child), stop(pair.upstream.child)])
      }
    }
  } finally {
    await rm(dirname(cert.certPath), { recursive: true, force: true })
  }
  return runs
}

async function freshPair (protocol: HeldProtocol, cert: { keyPath: string, certPath: string }, freePort: () => Promise<number>, gatewayEnv: Record<string, string>, launch: HeldLaunch): Promise<Pair> {
  const upstream = await launch.upstream({ BENCH_TLS_KEY: cert.keyPath, BENCH_TLS_CERT: cert.certPath })
  if (protocol === 'node-h2') {
    return { upstream, gateway: await launch.nodeProxy({ BENCH_UPSTREAM_URL: `https://127.0.0.1:${upstream.port}`, BENCH_UPSTREAM_CA_FILE: cert.certPath, BENCH_TOKEN: gatewayEnv.BENCH_TOKEN ?? '' }) }
  }
  const port = await freePort()
  const gateway = await launch.gateway({
    ...gatewayEnv,
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    UPSTREAM_URL: `https://127.0.0.1:${upstream.port}`,
    UPSTREAM_CA_FILE: cert.certPath,
    UPSTREAM_HTTP2: String(protocol === 'h2'),
  })
  return { gateway, upstream }
}

async function hold ({ gateway, upstream }: Pair, streams: number, settings: HeldSettings): Promise<Omit<HeldRun, 'protocol'>> {
  const call: Call = {
    origin: `http://127.0.0.1:${gateway.port}`,
    path: settings.path,
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-goog-api-key': gateway.key },
    body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'Write a long story.' }] }] }),
  }
  // One short stream first, as a gateway in service has made one: its upstream connection is up and its protocol known.
  await holdStreams({ ...call, path: call.path.replace(/chunks=\d+/, 'chunks=1') }, 1, gateway.child.pid!, { timeoutMs: settings.timeoutMs, holdMs: 0 })
  await ask(gateway.child, 'event-loop')
  let upstreamConnections = Number.NaN
  const held = await holdStreams(call, streams, gateway.child.pid!, {
    timeoutMs: settings.timeoutMs,
    holdMs: settings.holdMs,
    whileHeld: async () => { upstreamConnections = (await ask<{ open: number }>(upstream.child, 'connections')).open },
  })
  const loop = await ask<{ maxMs: number, p99Ms: number }>(gateway.child, 'event-loop')
  return { ...held, upstreamConnections, eventLoop: { maxMs: loop.maxMs, p99Ms: loop.p99Ms } }
}

/** One line per run, for the printed table. */
export function heldLines (runs: HeldRun[]): string[] {
  if (runs.length === 0) return []
  const cell = (value: number | string, width: number): string => String(value).padStart(width)
  return [
    'SSE streams held open at once through a fresh gateway (TLS upstream; "node h2": Node\'s minimal proxy, the baseline); chunk delay over the hold',
    `${'upstream'.padEnd(10)}${cell('streams', 9)}${cell('open', 7)}${cell('open ms', 9)}${cell('up conns', 10)}${cell('sockets', 9)}${cell('RSS rest', 10)}${cell('holding', 9)}${cell('KB/stream', 11)}${cell('delay p50', 11)}${cell('p99', 9)}${cell('max', 10)}${cell('chunks', 9)}${cell('loop max', 10)}`,
    ...runs.map((run) => `${({ h2: 'HTTP/2', h1: 'HTTP/1.1', main: 'main 1.1', 'node-h2': 'node h2' }[run.protocol]).padEnd(10)}${cell(run.streams, 9)}${cell(run.opened, 7)}${cell(Math.round(run.openAllMs), 9)}${cell(run.upstreamConnections, 10)}${cell(run.sockets, 9)}${cell(run.rssIdleMb, 10)}${cell(run.rssHoldingMb, 9)}${cell(kbPerStream(run), 11)}${cell(run.chunkDelayP50Ms, 11)}${cell(run.chunkDelayP99Ms, 9)}${cell(run.chunkDelayMaxMs, 10)}${cell(run.chunksSeen, 9)}${cell(run.eventLoop.maxMs, 10)}`),
  ]
}

/** RSS added per held stream, KB. */
export function kbPerStream (run: HeldStreamsResult): number {
  return Math.round((run.rssHoldingMb - run.rssIdleMb) * 1024 / Math.max(1, run.opened) * 10) / 10
}

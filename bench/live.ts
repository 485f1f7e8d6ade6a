// node --import ./scripts/register-ts.mjs bench/live.ts — memory per Live session: the gateway (its own process) relays
// LIVE_SESSIONS concurrent WebSocket sessions to a local fake Live upstream; prints the
// gateway's RSS before and with them held, and the difference per session. Bounded in time.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import WebSocket, { WebSocketServer } from 'ws'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SESSIONS = Number(process.env.LIVE_SESSIONS ?? 200)
const RUN_LIMIT_MS = 120_000
const HOLD_MS = 3_000
const PATH = '/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent'
// An audio-sized server message (100 ms of 24 kHz 16-bit PCM), as Google sends it.
const AUDIO = Buffer.from(JSON.stringify({ serverContent: { modelTurn: { parts: [{ inlineData: { mimeType: 'audio/pcm;rate=24000', data: Buffer.alloc(4800).toString('base64') } }] } } }))

setTimeout(() => { console.error('bench/live: time limit reached'); process.exit(1) }, RUN_LIMIT_MS).unref()

/** The gateway's memory after a collection: it answers SIGUSR2 with process.memoryUsage() on stdout. */
async function memoryOf (child: ReturnType<typeof spawn>): Promise<NodeJS.MemoryUsage> {
  const line = once(child.stdout!, 'data') as Promise<[Buffer]>
  child.kill('SIGUSR2')
  return JSON.parse((await line)[0].toString()) as NodeJS.MemoryUsage
}

/** The fake upstream: answers setup, then sends an audio message every 200 ms. */
async function fakeUpstream (): Promise<{ url: string, close: () => void }> {
  const server = createServer()
  const wss = new WebSocketServer({ server })
  wss.on('connection', (socket) => {
    socket.once('message', () => {
      socket.send(Buffer.from(JSON.stringify({ setupComplete: {} })))
      const timer = setInterval(() => { socket.send(AUDIO) }, 200)
      socket.on('close', () => { clearInterval(timer) })
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => { for (const socket of wss.clients) socket.terminate(); server.close() } }
}

async function openSession (url: string): Promise<WebSocket> {
  const socket = new WebSocket(url)
  await once(socket, 'open')
  socket.send(JSON.stringify({ setup: { model: 'models/gemini-3.8-flash-live' } }))
  await once(socket, 'message')
  return socket
}

const upstream = await fakeUpstream()
const gateway = spawn(process.execPath, ['--expose-gc', '--import', './scripts/register-ts.mjs', 'bench/live-gateway.ts'], { cwd: ROOT, env: { ...process.env, BENCH_UPSTREAM_URL: upstream.url }, stdio: ['ignore', 'pipe', 'inherit'] })
const [line] = await once(gateway.stdout!, 'data') as [Buffer]
const { port, key } = JSON.parse(line.toString()) as { port: number, key: string }
const url = `ws://127.0.0.1:${port}${PATH}?key=${key}`
try {
  // Memory per session is the slope between half and all of the sessions: start-up, JIT and
  // the first connections' buffers are in both readings, not in their difference.
  const half = Math.floor(SESSIONS / 2)
  const sessions: WebSocket[] = []
  async function openUpTo (count: number): Promise<NodeJS.MemoryUsage> {
    while (sessions.length < count) {
      sessions.push(...await Promise.all(Array.from({ length: Math.min(20, count - sessions.length) }, async () => await openSession(url))))
    }
    await sleep(HOLD_MS)
    return await memoryOf(gateway)
  }
  const atHalf = await openUpTo(half)
  const atAll = await openUpTo(SESSIONS)
  const open = sessions.filter((socket) => socket.readyState === WebSocket.OPEN).length
  const mb = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1)
  console.log(`live sessions held: ${open}/${SESSIONS} (each receiving ~${AUDIO.length} B every 200 ms)`)
  const perSession = (field: 'rss' | 'heapUsed' | 'external'): string => ((atAll[field] - atHalf[field]) / (SESSIONS - half) / 1024).toFixed(1)
  console.log(`gateway RSS: ${mb(atHalf.rss)} MiB with ${half} sessions, ${mb(atAll.rss)} MiB with ${SESSIONS}`)
  console.log(`per session: RSS ${perSession('rss')} KiB, JS heap ${perSession('heapUsed')} KiB, buffers ${perSession('external')} KiB`)
  for (const socket of sessions) socket.terminate()
} finally {
  gateway.kill('SIGTERM')
  upstream.close()
}

// The fixed-rate load generator, in a process of its own: plain JavaScript with a small heap,
// so its own pauses (a TypeScript loader, the bench's heap) do not land in the latencies it
// measures. Started by bench/load.ts with the call in BENCH_CALL; reports over IPC.
//
// An open model: each request leaves at its scheduled time whether or not earlier ones have
// finished, so a stall in the proxy shows in the latencies of every request it held. Each is
// timed from the moment it was handed to the client (queueing for a connection included) to
// the end of its body; none leaves early.
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { Pool } from 'undici'

const { call, rate, seconds } = JSON.parse(process.env.BENCH_CALL)
const pool = new Pool(call.origin, { connections: 64, pipelining: 1, keepAliveTimeout: 30_000 })

async function once () {
  const sent = performance.now()
  const response = await pool.request({ method: call.method, path: call.path, headers: call.headers, body: call.body ?? null })
  await response.body.arrayBuffer()
  if (response.statusCode >= 300) throw new Error(`status ${response.statusCode}`)
  return performance.now() - sent
}

// A short warm-up at the same rate, not measured: connections open, code paths compiled.
async function run (count) {
  const latencies = []
  let failures = 0
  const started = performance.now()
  const pending = []
  for (let index = 0; index < count; index++) {
    const wait = started + (index * 1000) / rate - performance.now()
    if (wait > 0) await sleep(wait)
    pending.push(once().then((ms) => { latencies.push(ms) }, () => { failures++ }))
  }
  await Promise.all(pending)
  return { latencies, failures }
}

await run(rate)
const { latencies, failures } = await run(rate * seconds)
await pool.close()
process.send({ latencies, failures }, () => process.exit(0))

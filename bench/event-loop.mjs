// The event-loop delay of a process under test (the gateway, Node's minimal proxy), per span:
// bench/run.ts sends { type: 'event-loop' }, gets the span's longest delay and p99 (ms), and the
// figures start afresh. Garbage-collection pauses over the same span go to stderr (the bench's
// output): the first suspect of a stall.
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks'

const GC_KINDS = { 1: 'scavenge', 2: 'mark-compact', 4: 'incremental', 8: 'weak-callbacks' }

/** Answers bench/run.ts's 'event-loop' messages for this process, named `label` on stderr. */
export function reportEventLoop (label) {
  const loop = monitorEventLoopDelay({ resolution: 5 })
  loop.enable()
  let gc = { count: 0, totalMs: 0, maxMs: 0, maxKind: '' }
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gc.count++
      gc.totalMs += entry.duration
      if (entry.duration > gc.maxMs) gc = { ...gc, maxMs: entry.duration, maxKind: GC_KINDS[entry.detail?.kind] ?? String(entry.detail?.kind) }
    }
  }).observe({ entryTypes: ['gc'] })
  process.on('message', (message) => {
    if (message?.type !== 'event-loop') return
    const maxMs = Math.round(loop.max / 1e5) / 10
    process.send({ type: 'event-loop', maxMs, p99Ms: Math.round(loop.percentile(99) / 1e5) / 10 })
    if (gc.count > 0) process.stderr.write(`${label}: event loop max ${maxMs} ms; gc ${gc.count} pauses, ${Math.round(gc.totalMs)} ms in all, longest ${gc.maxMs.toFixed(1)} ms (${gc.maxKind}); heap ${Math.round(process.memoryUsage().heapUsed / 1e6)} MB\n`)
    loop.reset()
    gc = { count: 0, totalMs: 0, maxMs: 0, maxKind: '' }
  })
}

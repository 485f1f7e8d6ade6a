// The request-duration histogram is summed in process (src/ops/summed-histogram.ts): what
// Prometheus reads must be what prom-client's own Histogram would have printed.
import { Histogram, Registry } from 'prom-client'
import t from 'tap'
import { SummedHistogram } from '../src/ops/summed-histogram.js'

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
const CONFIG = { name: 'gemgate_test_duration_seconds', help: 'A test histogram.', labelNames: ['method', 'route', 'status'] as const, buckets: BUCKETS }
// Every bound, either side of it, zero, and past the last.
const VALUES = [0, ...BUCKETS.flatMap((bound) => [bound * 0.999, bound, bound * 1.001]), 301, 1e6]
const LABELS = [{ method: 'POST', route: '/v1beta/*', status: '200' }, { method: 'GET', route: '/healthz', status: '503' }]

function both (): { theirs: Registry, ours: Registry, observe: (index: number, value: number) => void } {
  const theirs = new Registry()
  const ours = new Registry()
  const histogram = new Histogram({ ...CONFIG, registers: [theirs] })
  const summed = new SummedHistogram({ ...CONFIG, registers: [ours] })
  const series = LABELS.map((labels) => summed.series(labels))
  return { theirs, ours, observe: (index, value) => { histogram.observe(LABELS[index]!, value); series[index]!.observe(value) } }
}

/** What a reader of the registry's JSON uses: each line's name, labels and value. */
async function json (registry: Registry): Promise<unknown> {
  return (await registry.getMetricsAsJSON()).map(({ name, type, values }) => ({ name, type, values: values.map((line) => ({ metricName: (line as { metricName?: string }).metricName, labels: line.labels, value: line.value })) }))
}

t.test('the same text and JSON as prom-client\'s Histogram for the same observations', async (t) => {
  const { theirs, ours, observe } = both()
  t.equal(await ours.metrics(), await theirs.metrics(), 'nothing observed yet')
  VALUES.forEach((value, index) => { observe(index % 2, value) })
  for (const value of VALUES) observe(0, value)
  t.equal(await ours.metrics(), await theirs.metrics())
  t.same(await json(ours), await json(theirs))
  theirs.resetMetrics()
  ours.resetMetrics()
  observe(1, 0.3)
  t.equal(await ours.metrics(), await theirs.metrics(), 'after a reset')
})

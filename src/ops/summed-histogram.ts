import type { HistogramConfiguration, LabelValues, Registry } from 'prom-client'

/** One line of the metric as prom-client's registry prints it. */
interface MetricLine { metricName: string, labels: Record<string, string | number>, value: number }

/** One labelled series of a {@link SummedHistogram}: observations land in its buckets with no label hashing. */
export class HistogramSeries {
  /** Observations per bucket (not cumulative); the last one is +Inf. */
  readonly counts: number[]
  sum = 0
  count = 0

  constructor (readonly labels: Record<string, string | number>, private readonly upperBounds: readonly number[]) {
    this.counts = new Array<number>(upperBounds.length + 1).fill(0)
  }

  observe (value: number): void {
    if (!Number.isFinite(value)) return
    const bounds = this.upperBounds
    let bucket = 0
    while (bucket < bounds.length && value > bounds[bucket]!) bucket++
    this.counts[bucket]!++
    this.sum += value
    this.count++
  }
}

/**
 * A labelled Prometheus histogram for the hot path, registered as prom-client's own would be and
 * read the same way (text, JSON, cluster aggregation by sum): callers keep one series object per
 * label set and observe on it. prom-client's Histogram validates and hashes the labels on every
 * observation, even through a child made with `labels()`.
 */
export class SummedHistogram<T extends string> {
  readonly name: string
  readonly help: string
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly #upperBounds: readonly number[]
  readonly #series: HistogramSeries[] = []

  constructor (configuration: Pick<HistogramConfiguration<T>, 'name' | 'help' | 'labelNames'> & { buckets: readonly number[], registers: Registry[] }) {
    this.name = configuration.name
    this.help = configuration.help
    this.#upperBounds = [...configuration.buckets].sort((a, b) => a - b)
    for (const registry of configuration.registers) registry.registerMetric(this as never)
  }

  /** A new series for `labels` (keep it: each call makes another). */
  series (labels: LabelValues<T>): HistogramSeries {
    const series = new HistogramSeries(labels as Record<string, string | number>, this.#upperBounds)
    this.#series.push(series)
    return series
  }

  /** The metric as prom-client's registry reads it: cumulative buckets, then +Inf, sum and count per series. */
  async get (): Promise<{ name: string, help: string, type: 'histogram', aggregator: 'sum', values: MetricLine[] }> {
    const values: MetricLine[] = []
    for (const series of this.#series) {
      if (series.count === 0) continue
      let cumulative = 0
      this.#upperBounds.forEach((bound, index) => {
        cumulative += series.counts[index]!
        values.push({ metricName: `${this.name}_bucket`, labels: { le: bound, ...series.labels }, value: cumulative })
      })
      values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf', ...series.labels }, value: series.count })
      values.push({ metricName: `${this.name}_sum`, labels: series.labels, value: series.sum })
      values.push({ metricName: `${this.name}_count`, labels: series.labels, value: series.count })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  /** Forgets every observation (Registry#resetMetrics). */
  reset (): void {
    for (const series of this.#series) {
      series.counts.fill(0)
      series.sum = 0
      series.count = 0
    }
  }
}

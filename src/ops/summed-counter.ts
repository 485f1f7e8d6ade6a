import { Counter, type CounterConfiguration, type LabelValues } from 'prom-client'

/** One labelled series of a {@link SummedCounter}: what was counted since the registry was last read. */
export interface CounterSeries { value: number }

/**
 * A labelled Prometheus counter for the hot path: callers keep one series object per label set
 * and add to its `value`, and the sums go into the counter when the registry is read. prom-client
 * would hash the labels on every increment, even of a child made with `labels()`.
 */
export class SummedCounter<T extends string> {
  readonly #series: Array<{ labels: LabelValues<T>, sum: CounterSeries }> = []

  constructor (configuration: CounterConfiguration<T>) {
    const series = this.#series
    // The registry keeps the counter; it is only ever read through it.
    new Counter<T>({
      ...configuration,
      collect () {
        for (const { labels, sum } of series) {
          if (sum.value === 0) continue
          this.inc(labels, sum.value)
          sum.value = 0
        }
      },
    })
  }

  /** A new series for `labels` (keep it: each call makes another). */
  series (labels: LabelValues<T>): CounterSeries {
    const sum = { value: 0 }
    this.#series.push({ labels, sum })
    return sum
  }
}

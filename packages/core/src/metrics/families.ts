/**
 * Metric families built for the run path: each series is looked up once (per agent, per store
 * method) and then updated by adding to a number, where prom-client's own metrics validate and
 * hash the labels of every update. They register in a prom-client `Registry` like its metrics
 * (`get()`, `reset()`), which renders them with the rest.
 */

type Labels = Record<string, string | number>;

/** One series of a counter or a gauge. */
export class Series {
  value = 0;
  constructor(readonly labels: Labels) {}
}

/** One series of a histogram: a count per bucket (not cumulative), their sum and count. */
export class HistogramSeries {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    readonly labels: Labels,
    readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    this.sum += value;
    this.count += 1;
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.counts[i]! += 1;
        return;
      }
    }
  }
}

/** What a prom-client registry reads from a metric. */
interface MetricValue {
  labels: Labels;
  value: number;
  metricName?: string;
}

/** A counter or gauge family: its series by a key the caller builds. */
export class SeriesFamily {
  readonly aggregator = "sum";
  readonly #series = new Map<string, Series>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "counter" | "gauge",
  ) {}

  /** The series of `key`, made with `labels` the first time. */
  series(key: string, labels: Labels): Series {
    let series = this.#series.get(key);
    if (series === undefined) {
      series = new Series(labels);
      this.#series.set(key, series);
    }
    return series;
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: MetricValue[] } {
    const values = [...this.#series.values()].map((series) => ({ labels: series.labels, value: series.value }));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const series of this.#series.values()) series.value = 0;
  }
}

/** A histogram family: its series by a key the caller builds, all with the same buckets. */
export class HistogramFamily {
  readonly aggregator = "sum";
  readonly type = "histogram";
  readonly #series = new Map<string, HistogramSeries>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly bounds: readonly number[],
  ) {}

  series(key: string, labels: Labels): HistogramSeries {
    let series = this.#series.get(key);
    if (series === undefined) {
      series = new HistogramSeries(labels, this.bounds);
      this.#series.set(key, series);
    }
    return series;
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: MetricValue[] } {
    const values: MetricValue[] = [];
    for (const series of this.#series.values()) {
      let cumulative = 0;
      for (const [i, le] of this.bounds.entries()) {
        cumulative += series.counts[i]!;
        values.push({ labels: { ...series.labels, le }, value: cumulative, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: { ...series.labels, le: "+Inf" }, value: series.count, metricName: `${this.name}_bucket` });
      values.push({ labels: series.labels, value: series.sum, metricName: `${this.name}_sum` });
      values.push({ labels: series.labels, value: series.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const series of this.#series.values()) {
      series.counts.fill(0);
      series.sum = 0;
      series.count = 0;
    }
  }
}

// The request metrics, counted on every answered request, cached hits included. prom-client's
// own Counter and Histogram hash their label values on every increment (four hashes per request
// here), which cost more than the rest of counting a hit; these keep one plain record per label
// set, bound once, and build prom-client's JSON shape only when the registry is read (a scrape,
// or the cluster primary gathering its workers' figures, which sums them as it sums prom-client's).
import type { Metric, Registry } from 'prom-client';

/** One value as prom-client's registry reads it from a metric's get(). */
export interface MetricValueJson {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** A metric as prom-client's registry reads it (its typings call the type an enum; it is this string). */
export interface MetricJson {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  values: MetricValueJson[];
}

interface Described {
  readonly name: string;
  readonly help: string;
}

/** One counter series: the caller adds to `value`. */
export interface CounterSeries {
  value: number;
}

/** One histogram series. */
export interface HistogramSeries {
  observe(value: number): void;
}

abstract class HotMetric<S> {
  abstract readonly type: MetricJson['type'];
  readonly aggregator = 'sum' as const;
  protected readonly series = new Map<string, { labels: Record<string, string>; s: S }>();

  constructor(
    readonly name: string,
    readonly help: string,
    registry: Registry,
  ) {
    // The registry reads a metric through get() alone (as it does the cluster's aggregated ones).
    registry.registerMetric(this as unknown as Metric);
  }

  /** The series of these label values (in the metric's label order); bind once, use per request. */
  protected bound(labels: Record<string, string>, make: () => S): S {
    const key = Object.values(labels).join('\u0000');
    let e = this.series.get(key);
    if (!e) {
      e = { labels, s: make() };
      this.series.set(key, e);
    }
    return e.s;
  }

  /** Zeroes every series; bound series stay bound (and counting), unlike a cleared map would leave them. */
  reset(): void {
    for (const e of this.series.values()) this.zero(e.s);
  }

  protected abstract zero(s: S): void;
}

export class HotCounter<L extends string> extends HotMetric<CounterSeries> implements Described {
  readonly type = 'counter' as const;

  bind(labels: Record<L, string>): CounterSeries {
    return this.bound(labels, () => ({ value: 0 }));
  }

  protected zero(s: CounterSeries): void {
    s.value = 0;
  }

  get(): Promise<MetricJson> {
    const values: MetricValueJson[] = [];
    for (const { labels, s } of this.series.values()) values.push({ labels, value: s.value });
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }
}

class Buckets implements HistogramSeries {
  /** Observations per bucket (not cumulative); the last is above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > (b[i] as number)) i++;
    (this.counts[i] as number)++;
    this.sum += value;
    this.count++;
  }
}

export class HotHistogram<L extends string> extends HotMetric<Buckets> implements Described {
  readonly type = 'histogram' as const;

  constructor(
    name: string,
    help: string,
    registry: Registry,
    private readonly bounds: readonly number[],
  ) {
    super(name, help, registry);
  }

  bind(labels: Record<L, string>): HistogramSeries {
    return this.bound(labels, () => new Buckets(this.bounds));
  }

  protected zero(s: Buckets): void {
    s.counts.fill(0);
    s.sum = 0;
    s.count = 0;
  }

  /** As prom-client's Histogram gives it: per series its cumulative buckets (le), then _sum and _count. */
  get(): Promise<MetricJson> {
    const values: MetricValueJson[] = [];
    const bucket = `${this.name}_bucket`;
    for (const { labels, s } of this.series.values()) {
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += s.counts[i] as number;
        values.push({ labels: { le: this.bounds[i] as number, ...labels }, value: acc, metricName: bucket });
      }
      values.push({ labels: { le: '+Inf', ...labels }, value: s.count, metricName: bucket });
      values.push({ labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: s.count, metricName: `${this.name}_count` });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }
}

/**
 * A small Prometheus registry: counters, gauges and histograms with labels, rendered in the text
 * exposition format (0.0.4). Built for the log phase of a proxy: a series is looked up once by its label
 * values and then updated through a plain object, so callers that see the same label set again (the same
 * route, consumer and node) can keep the series and skip the lookup.
 */

export const DEFAULT_LATENCY_BUCKETS: readonly number[] = [
  1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000,
];
export const DEFAULT_TOKEN_BUCKETS: readonly number[] = [
  1, 10, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000, 1000000,
];

/** Separates label values in series keys; cannot occur in a label value that went through labelValue(). */
const SEP = "\u0000";

export interface CounterSeries {
  value: number;
}

export interface HistogramSeries {
  /** Observations per bucket (not cumulative); the last slot is +Inf. */
  readonly counts: number[];
  sum: number;
  count: number;
}

interface Family<S> {
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "gauge" | "histogram";
  readonly labelNames: readonly string[];
  readonly series: Map<string, { labels: readonly string[]; data: S }>;
}

export abstract class Metric<S> implements Family<S> {
  readonly series = new Map<string, { labels: readonly string[]; data: S }>();
  abstract readonly type: "counter" | "gauge" | "histogram";

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}

  protected abstract fresh(): S;

  /** The series of these label values (one per label name, in order), created on first use. */
  get(labels: readonly string[]): S {
    const key = labels.length === 1 ? labels[0]! : labels.join(SEP);
    let entry = this.series.get(key);
    if (entry === undefined) {
      if (labels.length !== this.labelNames.length) {
        throw new Error(`${this.name}: ${labels.length} label values for ${this.labelNames.length} labels`);
      }
      entry = { labels: labels.slice(), data: this.fresh() };
      this.series.set(key, entry);
    }
    return entry.data;
  }

  /** Drops every series; gauges that are recomputed at each scrape start from nothing. */
  reset(): void {
    this.series.clear();
  }
}

export class Counter extends Metric<CounterSeries> {
  readonly type = "counter";
  protected fresh(): CounterSeries {
    return { value: 0 };
  }
  inc(labels: readonly string[], by = 1): void {
    if (by > 0) this.get(labels).value += by;
  }
}

export class Gauge extends Metric<CounterSeries> {
  readonly type = "gauge";
  protected fresh(): CounterSeries {
    return { value: 0 };
  }
  set(labels: readonly string[], value: number): void {
    this.get(labels).value = value;
  }
  add(labels: readonly string[], by: number): void {
    this.get(labels).value += by;
  }
}

export class Histogram extends Metric<HistogramSeries> {
  readonly type = "histogram";
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    readonly buckets: readonly number[],
  ) {
    super(name, help, labelNames);
  }
  protected fresh(): HistogramSeries {
    return { counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
  }
  observe(labels: readonly string[], value: number): void {
    observe(this.get(labels), this.buckets, value);
  }
}

/** Adds one observation to a histogram series whose buckets are `buckets`. */
export function observe(series: HistogramSeries, buckets: readonly number[], value: number): void {
  if (!Number.isFinite(value)) return;
  let i = 0;
  while (i < buckets.length && value > buckets[i]!) i++;
  series.counts[i]!++;
  series.sum += value;
  series.count++;
}

export class MetricRegistry {
  private readonly families: Metric<unknown>[] = [];

  /** Put before every family name when rendering (APISIX's `metric_prefix`). */
  prefix = "apisix_";

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.add(new Gauge(name, help, labelNames));
  }

  histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): Histogram {
    return this.add(new Histogram(name, help, labelNames, buckets));
  }

  private add<M>(metric: M): M {
    this.families.push(metric as unknown as Metric<unknown>);
    return metric;
  }

  /** Every family with at least one series, in registration order (families without series are left out). */
  render(): string {
    let out = "";
    for (const family of this.families) {
      if (family.series.size === 0) continue;
      const name = this.prefix + family.name;
      out += `# HELP ${name} ${escapeHelp(family.help)}\n# TYPE ${name} ${family.type}\n`;
      if (family instanceof Histogram) out += renderHistogram(name, family);
      else
        for (const { labels, data } of family.series.values())
          out += `${name}${labelSet(family.labelNames, labels)} ${formatNumber((data as CounterSeries).value)}\n`;
    }
    return out;
  }
}

function renderHistogram(name: string, h: Histogram): string {
  let out = "";
  for (const { labels, data } of h.series.values()) {
    let cumulative = 0;
    for (let i = 0; i <= h.buckets.length; i++) {
      cumulative += data.counts[i]!;
      const le = i === h.buckets.length ? "+Inf" : formatNumber(h.buckets[i]!);
      out += `${name}_bucket${labelSet(h.labelNames, labels, le)} ${cumulative}\n`;
    }
    const set = labelSet(h.labelNames, labels);
    out += `${name}_sum${set} ${formatNumber(data.sum)}\n${name}_count${set} ${data.count}\n`;
  }
  return out;
}

function labelSet(names: readonly string[], values: readonly string[], le?: string): string {
  if (names.length === 0 && le === undefined) return "";
  let out = "{";
  for (let i = 0; i < names.length; i++) out += `${i === 0 ? "" : ","}${names[i]}="${escapeValue(values[i]!)}"`;
  if (le !== undefined) out += `${names.length === 0 ? "" : ","}le="${le}"`;
  return `${out}}`;
}

/** The exposition format's escapes for label values: backslash, double quote and line feed. */
function escapeValue(v: string): string {
  return /[\\"\n]/.test(v) ? v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n") : v;
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatNumber(n: number): string {
  if (Number.isInteger(n)) return String(n);
  if (n === Number.POSITIVE_INFINITY) return "+Inf";
  if (n === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(Math.round(n * 1e6) / 1e6);
}

/**
 * A label value from request data: at most `max` characters and without NUL (the series-key separator),
 * so a client cannot mint unbounded label values from a long model name.
 */
export function labelValue(v: string | undefined, max = 128): string {
  if (v === undefined) return "";
  const cut = v.length > max ? v.slice(0, max) : v;
  return cut.includes(SEP) ? cut.replaceAll(SEP, "") : cut;
}

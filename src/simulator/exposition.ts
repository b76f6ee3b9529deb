/**
 * A small writer of the Prometheus text exposition format (version 0.0.4), enough to print metrics the way the
 * servers the simulator stands in for print them. The simulator imports nothing from the gateway, so it does not
 * share the gateway's registry.
 */

/** Label pairs, in the order they are printed. */
export type Labels = readonly (readonly [string, string])[];

/** Counts observations into buckets whose upper bounds are inclusive, as Prometheus clients do. */
export class Histogram {
  /** Per-bucket counts (not cumulative); the last is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }
}

/**
 * Python prometheus_client's number format (floatToGoString over Python's repr): 3.0, 0.25, 1e-05, +Inf; large
 * values switch to exponents sooner, as Go does. vLLM and SGLang print through it.
 */
export function pythonNumber(v: number): string {
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  if (Number.isNaN(v)) return "NaN";
  let s: string;
  if (Number.isInteger(v) && Math.abs(v) < 1e16) s = `${v}.0`;
  else if (v !== 0 && Math.abs(v) < 1e-4) s = v.toExponential().replace(/e([+-])(\d)$/, "e$10$2");
  else s = String(v);
  const dot = s.indexOf(".");
  if (v > 0 && dot > 6 && !s.includes("e")) {
    const mantissa = `${s[0]}.${s.slice(1, dot)}${s.slice(dot + 1)}`.replace(/[.0]+$/, "");
    return `${mantissa}e+0${dot - 1}`;
  }
  return s;
}

/** C++ iostream's default for a double (printf %g, 6 significant digits): llama.cpp prints through it. */
export function cppNumber(v: number): string {
  if (v === 0) return "0";
  if (!Number.isFinite(v)) return Number.isNaN(v) ? "nan" : v > 0 ? "inf" : "-inf";
  const [mantissa, exp] = v.toExponential(5).split("e") as [string, string];
  const e = Number(exp);
  const strip = (s: string) => (s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s);
  if (e < -4 || e >= 6) return `${strip(mantissa)}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
  return strip(v.toFixed(5 - e));
}

const escapeLabel = (v: string) => v.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
const escapeHelp = (v: string) => v.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");

function labelText(labels: Labels): string {
  if (labels.length === 0) return "";
  let s = "{";
  for (let i = 0; i < labels.length; i++) {
    const [k, v] = labels[i]!;
    s += `${i === 0 ? "" : ","}${k}="${escapeLabel(v)}"`;
  }
  return `${s}}`;
}

export type MetricType = "counter" | "gauge" | "histogram";

/** Accumulates one scrape's text. */
export class Exposition {
  private out = "";

  constructor(private readonly number: (v: number) => string = pythonNumber) {}

  /** One family with a single sample. */
  metric(name: string, type: MetricType, help: string, value: number, labels: Labels = []): void {
    this.header(name, type, help);
    this.sample(name, labels, value);
  }

  header(name: string, type: MetricType, help: string): void {
    this.out += `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`;
  }

  sample(name: string, labels: Labels, value: number): void {
    this.out += `${name}${labelText(labels)} ${this.number(value)}\n`;
  }

  /**
   * A histogram family: cumulative _bucket samples, then _count and _sum, as prometheus_client orders them.
   * `le` is placed among the labels in sorted order, as prometheus_client sorts every sample's labels.
   */
  histogram(name: string, help: string, h: Histogram, labels: Labels = []): void {
    this.header(name, "histogram", help);
    let at = labels.findIndex(([k]) => k > "le");
    if (at === -1) at = labels.length;
    let cumulative = 0;
    for (let i = 0; i <= h.bounds.length; i++) {
      cumulative += h.counts[i]!;
      const le = i < h.bounds.length ? pythonNumber(h.bounds[i]!) : "+Inf";
      const withLe: Labels = [...labels.slice(0, at), ["le", le], ...labels.slice(at)];
      this.sample(`${name}_bucket`, withLe, cumulative);
    }
    this.sample(`${name}_count`, labels, h.count);
    this.sample(`${name}_sum`, labels, h.sum);
  }

  text(): string {
    return this.out;
  }
}

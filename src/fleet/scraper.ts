import type { Client } from "undici";
import { type LoadSignals, readScrape, readSlots } from "./signals.js";

/**
 * A background reader of one model server's metrics endpoint. It scrapes on an interval with jitter, one
 * request at a time, with a bounded time and body size, and keeps the last good reading in `state`, which
 * is all the request path ever touches: no scrape runs on behalf of a request, and a metrics endpoint that
 * hangs, answers garbage or streams forever costs only this scraper's own timer and socket.
 */
export interface ScrapeState {
  /** The last good scrape's signals, kept while later scrapes fail (then `stale` says how much to trust it). */
  readonly signals: LoadSignals | undefined;
  /** performance.now() ms of the last good scrape; 0 before the first. */
  readonly scrapedAt: number;
  /** No good scrape within staleAfterMs (or none yet). */
  readonly stale: boolean;
  /** Why the last scrape failed (timeout, status, size, unparsable, no known series); cleared on success. */
  readonly error: string | undefined;
  /** +1 per good scrape: a balancer counting its own requests "since the last scrape" resets on a change. */
  readonly generation: number;
  /** Consecutive failed scrapes. */
  readonly failures: number;
}

export interface ScraperOptions {
  /** http(s) URL of the endpoint, e.g. `http://10.0.0.7:8000/metrics` (trtllm-serve: `/prometheus/metrics`). */
  readonly url: string;
  /** Time between scrapes; default 500 ms. */
  readonly intervalMs?: number;
  /** Bound on one scrape, connect to last byte; default min(interval, 1000 ms). */
  readonly timeoutMs?: number;
  /** Each interval is drawn from interval × (1 ± jitter) so scrapers started together drift apart; default 0.1. */
  readonly jitter?: number;
  /** Bodies larger than this are abandoned; default 1 MiB (a vLLM scrape is 30-100 KB). */
  readonly maxBytes?: number;
  /** Signals older than this are stale; default 3 × interval. */
  readonly staleAfterMs?: number;
  /** Extra request headers, e.g. an Authorization a metrics proxy asks for. */
  readonly headers?: Readonly<Record<string, string>>;
  /** https endpoints: verify the certificate unless `verify` is false. */
  readonly tls?: { readonly verify?: boolean };
  /**
   * `prometheus` (default) reads the exposition text; `llamacpp-slots` reads llama.cpp's `/slots` JSON
   * instead (running = slots processing; no queue or KV), for llama-server started without `--metrics`.
   */
  readonly format?: "prometheus" | "llamacpp-slots";
}

interface Resolved {
  readonly url: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly jitter: number;
  readonly maxBytes: number;
  readonly staleAfterMs: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly verify: boolean;
  readonly format: "prometheus" | "llamacpp-slots";
}

const MiB = 1024 * 1024;

function resolve(o: ScraperOptions): Resolved {
  const intervalMs = positive(o.intervalMs, 500);
  return {
    url: o.url,
    intervalMs,
    timeoutMs: positive(o.timeoutMs, Math.min(intervalMs, 1000)),
    jitter: Math.min(Math.max(o.jitter ?? 0.1, 0), 1),
    maxBytes: positive(o.maxBytes, MiB),
    staleAfterMs: positive(o.staleAfterMs, 3 * intervalMs),
    headers: o.headers ?? {},
    verify: o.tls?.verify !== false,
    format: o.format ?? "prometheus",
  };
}

function positive(x: number | undefined, fallback: number): number {
  return x !== undefined && Number.isFinite(x) && x > 0 ? x : fallback;
}

/** The identity of a scraper: two configs that resolve to the same options share one. */
function keyOf(o: Resolved): string {
  const headers = Object.entries(o.headers)
    .map(([k, v]) => [k.toLowerCase(), v])
    .sort(([a], [b]) => (a! < b! ? -1 : a! > b! ? 1 : 0));
  return JSON.stringify([
    o.url,
    o.intervalMs,
    o.timeoutMs,
    o.jitter,
    o.maxBytes,
    o.staleAfterMs,
    o.verify,
    o.format,
    headers,
  ]);
}

const NOT_YET: ScrapeState = {
  signals: undefined,
  scrapedAt: 0,
  stale: true,
  error: undefined,
  generation: 0,
  failures: 0,
};

/** A scrape that failed for a reason worth showing as is. */
class ScrapeFailure extends Error {}

export class MetricsScraper {
  readonly url: string;
  /** What the registry shares this scraper under. */
  readonly key: string;
  private readonly options: Resolved;
  private readonly origin: string | undefined;
  private readonly path: string;
  private readonly requestHeaders: Record<string, string>;
  private snapshot: ScrapeState = NOT_YET;
  private client: Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: AbortController | undefined;
  private started = false;
  private stopped = false;

  constructor(options: ScraperOptions) {
    this.options = resolve(options);
    this.url = options.url;
    this.key = keyOf(this.options);
    let origin: string | undefined;
    let path = "/";
    try {
      const u = new URL(options.url);
      if (u.protocol === "http:" || u.protocol === "https:") {
        origin = u.origin;
        path = `${u.pathname}${u.search}`;
      }
    } catch {
      // recorded below: a bad URL is a scraper that never scrapes, not an exception in config compile
    }
    this.origin = origin;
    this.path = path;
    if (origin === undefined) this.snapshot = { ...NOT_YET, error: `not an http(s) URL: ${options.url}` };
    this.requestHeaders = {
      accept: this.options.format === "prometheus" ? "text/plain" : "application/json",
      ...this.options.headers,
    };
  }

  /** Starts scraping (the first scrape within jitter × interval). Idempotent; a stopped scraper stays stopped. */
  start(): void {
    if (this.started || this.stopped || this.origin === undefined) return;
    this.started = true;
    this.schedule(Math.random() * this.options.jitter * this.options.intervalMs);
  }

  /** Cancels the timer and any scrape in flight and closes the connection; nothing of this scraper outlives it. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.inFlight?.abort();
    this.inFlight = undefined;
    const client = this.client;
    this.client = undefined;
    client?.destroy().catch(() => undefined);
  }

  /** The last reading; cheap enough for every pick (one clock read, no allocation unless `stale` flips). */
  get state(): ScrapeState {
    const s = this.snapshot;
    const stale = s.scrapedAt === 0 || performance.now() - s.scrapedAt > this.options.staleAfterMs;
    if (stale !== s.stale) this.snapshot = { ...s, stale };
    return this.snapshot;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.scrape();
    }, delayMs);
    this.timer.unref();
  }

  /** One scrape; never rejects, and schedules the next one when it is over, so two never overlap. */
  private async scrape(): Promise<void> {
    const started = performance.now();
    const { timeoutMs, maxBytes } = this.options;
    const abort = new AbortController();
    this.inFlight = abort;
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      abort.abort();
    }, timeoutMs);
    deadline.unref();
    try {
      const client = await this.dispatcher();
      const res = await client.request({
        path: this.path,
        method: "GET",
        headers: this.requestHeaders,
        signal: abort.signal,
      });
      if (res.statusCode < 200 || res.statusCode > 299) {
        discard(res.body);
        throw new ScrapeFailure(`status ${res.statusCode}`);
      }
      const declared = Number(res.headers["content-length"]);
      if (declared > maxBytes) {
        discard(res.body);
        throw new ScrapeFailure(`body of ${declared} bytes is over maxBytes ${maxBytes}`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > maxBytes) {
          discard(res.body);
          throw new ScrapeFailure(`body over maxBytes ${maxBytes}`);
        }
        chunks.push(chunk);
      }
      if (!this.stopped) this.read(Buffer.concat(chunks, size).toString("utf8"));
    } catch (err) {
      if (!this.stopped) this.fail(timedOut || isTimeout(err) ? `timeout after ${timeoutMs} ms` : describe(err));
    } finally {
      clearTimeout(deadline);
      if (this.inFlight === abort) this.inFlight = undefined;
      const { intervalMs, jitter } = this.options;
      const next = intervalMs * (1 + jitter * (2 * Math.random() - 1));
      this.schedule(Math.max(0, next - (performance.now() - started)));
    }
  }

  private read(text: string): void {
    if (this.options.format === "llamacpp-slots") {
      const signals = readSlots(text);
      if (signals === undefined) this.fail("unparsable: not a llama.cpp /slots array");
      else this.succeed(signals);
      return;
    }
    const scrape = readScrape(text, this.snapshot.signals);
    if (scrape.signals.dialect !== undefined) this.succeed(scrape.signals);
    else if (scrape.samples === 0) {
      const c = text.trimStart()[0];
      this.fail(c === "{" || c === "[" ? "unparsable: JSON, not Prometheus text" : "unparsable: no Prometheus samples");
    } else this.fail("no known series (vllm:, sglang:, llamacpp:, trtllm_)");
  }

  private succeed(signals: LoadSignals): void {
    this.snapshot = {
      signals,
      scrapedAt: performance.now(),
      stale: false,
      error: undefined,
      generation: this.snapshot.generation + 1,
      failures: 0,
    };
  }

  private fail(error: string): void {
    const s = this.snapshot;
    this.snapshot = { ...s, error, failures: s.failures + 1 };
  }

  /**
   * One keep-alive connection per scraper: a scrape every 500 ms should not pay a handshake each time.
   * undici's API is loaded on the first scrape, as the etcd store does, so a gateway without load
   * signals does not carry it.
   */
  private async dispatcher(): Promise<Client> {
    if (this.client !== undefined) return this.client;
    const { Client } = await import("undici");
    if (this.stopped) throw new ScrapeFailure("stopped");
    const { timeoutMs, verify } = this.options;
    this.client = new Client(this.origin!, {
      connectTimeout: timeoutMs,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      pipelining: 1,
      ...(this.origin!.startsWith("https:") ? { connect: { rejectUnauthorized: verify } } : {}),
    });
    return this.client;
  }
}

/**
 * Drops a body we will not read. undici's BodyReadable emits an AbortError when destroyed; without a
 * listener that would be an uncaught exception, the one thing a scraper must never raise.
 */
function discard(body: NodeJS.ReadableStream & { destroy(): void }): void {
  body.on("error", () => undefined);
  body.destroy();
}

const TIMEOUT_CODES = new Set(["UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);

function isTimeout(err: unknown): boolean {
  return TIMEOUT_CODES.has((err as { code?: string } | null)?.code ?? "");
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === "string" && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

/**
 * Scrapers outside snapshots, like health checkers: shared by every snapshot (and every upstream) that
 * names the same endpoint with the same options, reference-counted, so a config edit neither restarts
 * scraping nor loses the counters the prefix hit rate is computed from. Each acquire() is paired with one
 * release(); the last release stops the scraper.
 */
export class ScraperRegistry {
  private readonly entries = new Map<string, { scraper: MetricsScraper; refs: number }>();

  acquire(options: ScraperOptions): MetricsScraper {
    const key = keyOf(resolve(options));
    const entry = this.entries.get(key);
    if (entry !== undefined) {
      entry.refs++;
      return entry.scraper;
    }
    const scraper = new MetricsScraper(options);
    this.entries.set(key, { scraper, refs: 1 });
    scraper.start();
    return scraper;
  }

  release(scraper: MetricsScraper): void {
    const entry = this.entries.get(scraper.key);
    if (entry === undefined || entry.scraper !== scraper) return;
    if (--entry.refs > 0) return;
    this.entries.delete(scraper.key);
    scraper.stop();
  }

  closeAll(): void {
    for (const { scraper } of this.entries.values()) scraper.stop();
    this.entries.clear();
  }

  /** Every endpoint scraped now and its state, for the Control API. */
  list(): { url: string; state: ScrapeState }[] {
    return [...this.entries.values()].map(({ scraper }) => ({ url: scraper.url, state: scraper.state }));
  }
}

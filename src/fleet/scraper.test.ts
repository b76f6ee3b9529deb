import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, test } from "node:test";
import { MetricsScraper, ScraperRegistry, type ScrapeState } from "./scraper.js";

const VLLM = readFileSync(new URL("./fixtures/vllm.prom", import.meta.url), "utf8");

/** A metrics endpoint on 127.0.0.1 whose answer each test changes while the scraper runs. */
interface Endpoint {
  url: string;
  /** Requests received so far. */
  hits: number;
  /** Open client connections. */
  open: number;
  handle: (req: IncomingMessage, res: ServerResponse) => void;
  close: () => Promise<void>;
}

async function endpoint(handle: Endpoint["handle"]): Promise<Endpoint> {
  const server: Server = createServer((req, res) => {
    ep.hits++;
    ep.handle(req, res);
  });
  const ep: Endpoint = {
    url: "",
    hits: 0,
    open: 0,
    handle,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on("connection", (socket) => {
    ep.open++;
    socket.on("close", () => ep.open--);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  ep.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
  after(() => ep.close());
  return ep;
}

const prom = (text: string) => (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
  res.end(text);
};

/** Polls until `cond` holds; bounded so a broken scraper fails the test instead of hanging it. */
async function until(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const FAST = { intervalMs: 30, timeoutMs: 200, staleAfterMs: 150 };

function started(url: string, extra: object = {}): MetricsScraper {
  const s = new MetricsScraper({ url, ...FAST, ...extra });
  after(() => s.stop());
  s.start();
  return s;
}

test("reads a vLLM endpoint into signals in the background, and a growing queue within two scrapes", async () => {
  const ep = await endpoint(prom(VLLM));
  const s = started(ep.url);
  await until("a first good scrape", () => s.state.generation >= 1);
  const first: ScrapeState = s.state;
  assert.equal(first.error, undefined);
  assert.equal(first.stale, false);
  assert.equal(first.failures, 0);
  assert.deepEqual(first.signals, {
    dialect: "vllm",
    waiting: 3,
    running: 12,
    kvUsage: 0.4375,
    prefixHitRate: 0.625,
    prefixQueries: 40960,
    prefixHits: 25600,
  });

  ep.handle = prom(VLLM.replace(/^(vllm:num_requests_waiting\{.*\}) 3\.0$/m, "$1 41.0"));
  // A scrape in flight when the queue grew may still carry the old value; the one after it cannot.
  const g = s.state.generation;
  await until("two more scrapes", () => s.state.generation >= g + 2);
  assert.equal(s.state.signals?.waiting, 41);
});

test("the prefix hit rate over real scrapes comes from counter deltas between them", async () => {
  let queries = 10_000;
  let hits = 0;
  const ep = await endpoint((req, res) => {
    // Every scrape sees 100 more lookups of which 80 hit; the lifetime ratio stays far below 0.8.
    queries += 100;
    hits += 80;
    prom(
      `vllm:prefix_cache_queries_total{engine="0"} ${queries}.0\nvllm:prefix_cache_hits_total{engine="0"} ${hits}.0\n`,
    )(req, res);
  });
  const s = started(ep.url);
  await until("two good scrapes", () => s.state.generation >= 2);
  assert.equal(s.state.signals?.prefixHitRate, 0.8);
});

const BAD: [string, Endpoint["handle"], RegExp][] = [
  [
    "404 (a server without a metrics endpoint)",
    (_req, res) => {
      res.writeHead(404, { "content-type": "application/json" });
      res.end('{"detail":"Not Found"}');
    },
    /^status 404$/,
  ],
  [
    "garbage text",
    (_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<!DOCTYPE html>\n<html><body>Welcome to nginx!</body></html>\n");
    },
    /^unparsable/,
  ],
  ["Prometheus text of some other server", prom("# TYPE go_goroutines gauge\ngo_goroutines 42\n"), /^no known series/],
  [
    "a 5 MB body streamed without a length",
    (_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      const line = `${"x".repeat(1023)}\n`;
      let sent = 0;
      const push = () => {
        while (sent < 5 * 1024 && res.write(line)) sent++;
        if (sent >= 5 * 1024) res.end();
        else res.once("drain", push);
      };
      res.on("close", () => res.removeAllListeners("drain"));
      push();
    },
    /over maxBytes/,
  ],
  [
    "a 5 MB body announced by content-length",
    (_req, res) => {
      res.writeHead(200, { "content-type": "text/plain", "content-length": String(5 * 1024 * 1024) });
      res.write("vllm:num_requests_waiting 1\n");
    },
    /^body of 5242880 bytes is over maxBytes/,
  ],
  ["an endpoint that never answers", () => undefined, /^timeout after 200 ms$/],
];

for (const [what, bad, error] of BAD) {
  test(`metrics endpoint answering ${what}: error reported, stale after staleAfterMs, scraping goes on and recovers`, async () => {
    const ep = await endpoint(prom(VLLM));
    const s = started(ep.url);
    await until("a first good scrape", () => s.state.generation >= 1);
    const good = s.state;

    ep.handle = bad;
    await until("the failure to be reported", () => s.state.error !== undefined);
    assert.match(s.state.error!, error);
    // The last good signals stay, marked stale once they are older than staleAfterMs.
    await until("stale", () => s.state.stale);
    assert.deepEqual(s.state.signals, good.signals);
    const { failures, generation } = s.state;
    await until("more attempts", () => s.state.failures >= failures + 2);
    assert.equal(s.state.generation, generation, "no good scrape while the endpoint is bad");

    ep.handle = prom(VLLM);
    await until("recovery", () => s.state.error === undefined && !s.state.stale);
    assert.equal(s.state.failures, 0);
    assert.ok(s.state.generation > good.generation);
  });
}

test("trtllm-serve's JSON /metrics is reported as not Prometheus text", async () => {
  const ep = await endpoint((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('[{"gpuMemUsage":0,"iter":12,"numActiveRequests":0}]');
  });
  const s = started(ep.url);
  await until("an error", () => s.state.error !== undefined);
  assert.equal(s.state.error, "unparsable: JSON, not Prometheus text");
  assert.equal(s.state.signals, undefined);
  assert.equal(s.state.stale, true);
});

test("a refused connection and a URL that is not http(s) are errors in state, never exceptions", async () => {
  const ep = await endpoint(prom(VLLM));
  const url = ep.url;
  await ep.close();
  const refused = started(url);
  await until("an error", () => refused.state.failures >= 2);
  assert.match(refused.state.error!, /ECONNREFUSED/);

  const bad = started("ftp://127.0.0.1/metrics");
  assert.equal(bad.state.error, "not an http(s) URL: ftp://127.0.0.1/metrics");
  assert.equal(new MetricsScraper({ url: "not a url" }).state.error, "not an http(s) URL: not a url");
});

test("llama.cpp /slots, opt-in: slots processing count as running", async () => {
  const ep = await endpoint((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify([
        { id: 0, is_processing: true },
        { id: 1, is_processing: false },
      ]),
    );
  });
  const s = started(ep.url.replace("/metrics", "/slots"), { format: "llamacpp-slots" });
  await until("a good scrape", () => s.state.generation >= 1);
  assert.equal(s.state.signals?.running, 1);
  assert.equal(s.state.signals?.dialect, "llamacpp");
});

test("configured headers are sent; one scrape at a time even when the server is slower than the interval", async () => {
  let inFlight = 0;
  let most = 0;
  let auth: string | undefined;
  const ep = await endpoint((req, res) => {
    auth = req.headers.authorization;
    inFlight++;
    most = Math.max(most, inFlight);
    setTimeout(() => {
      inFlight--;
      prom(VLLM)(req, res);
    }, 60);
  });
  const s = started(ep.url, { headers: { Authorization: "Bearer metrics-token" } });
  await until("three scrapes", () => s.state.generation >= 3);
  assert.equal(auth, "Bearer metrics-token");
  assert.equal(most, 1);
});

test("stop() cancels the scrape in flight and the timer and closes the connection", async () => {
  const ep = await endpoint(() => undefined); // hangs: the stop lands while a scrape is in flight
  const s = new MetricsScraper({ url: ep.url, intervalMs: 30, timeoutMs: 10_000 });
  s.start();
  await until("a scrape in flight", () => ep.hits === 1 && ep.open === 1);
  s.stop();
  await until("the connection closed", () => ep.open === 0);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(ep.hits, 1, "no scrape after stop()");
  assert.equal(s.state.error, undefined, "a cancelled scrape is not a failure");
});

test("the registry shares one scraper per endpoint and options, and stops it on the last release", async () => {
  const ep = await endpoint(prom(VLLM));
  const registry = new ScraperRegistry();
  after(() => registry.closeAll());
  const a = registry.acquire({ url: ep.url, ...FAST, headers: { "X-A": "1", "X-B": "2" } });
  const b = registry.acquire({ url: ep.url, ...FAST, headers: { "x-b": "2", "x-a": "1" } });
  const other = registry.acquire({ url: ep.url, ...FAST, intervalMs: 40 });
  assert.equal(a, b);
  assert.notEqual(a, other);
  await until("both scraping", () => a.state.generation >= 1 && other.state.generation >= 1);
  assert.deepEqual(
    registry.list().map((e) => [e.url, e.state.signals?.dialect]),
    [
      [ep.url, "vllm"],
      [ep.url, "vllm"],
    ],
  );

  // A config edit: the new snapshot acquires before the old one releases, and scraping goes on.
  const c = registry.acquire({ url: ep.url, ...FAST, headers: { "X-A": "1", "X-B": "2" } });
  assert.equal(c, a);
  registry.release(a);
  registry.release(b);
  const g = a.state.generation;
  await until("still scraping", () => a.state.generation >= g + 2);

  registry.release(c);
  registry.release(other);
  assert.deepEqual(registry.list(), []);
  await new Promise((r) => setTimeout(r, 60));
  const hits = ep.hits;
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(ep.hits, hits, "no scrapes after the last release");
  await until("connections closed", () => ep.open === 0);

  // Released twice or never acquired: ignored.
  registry.release(a);
  registry.release(new MetricsScraper({ url: ep.url }));
});

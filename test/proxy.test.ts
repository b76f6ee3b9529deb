import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, before, describe, test } from "node:test";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { fetchBody as get } from "./helpers/http.js";
import { deadPort, startUpstream, type TestUpstream } from "./helpers/upstream.js";

describe("proxy path", () => {
  let gw: TestGateway;
  let a: TestUpstream;
  let b: TestUpstream;

  before(async () => {
    gw = await startTestGateway();
    a = await startUpstream("a");
    b = await startUpstream("b");
  });
  after(async () => {
    await gw.stop();
    await a.close();
    await b.close();
  });

  test("unmatched requests get APISIX's 404 JSON", async () => {
    const res = await get(`${gw.proxyUrl}/nothing/here`);
    assert.equal(res.status, 404);
    assert.deepEqual(res.body, { error_msg: "404 Route Not Found" });
  });

  test("forwards method, path, query, body and forwarding headers; strips hop-by-hop headers", async () => {
    const put = await gw.admin("PUT", "/apisix/admin/routes/echo", {
      uri: "/echo/*",
      upstream: { type: "roundrobin", nodes: [{ host: "127.0.0.1", port: a.port, weight: 1 }] },
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    const res = await get(`${gw.proxyUrl}/echo/x?q=1&r=two`, {
      method: "POST",
      headers: {
        "content-type": "text/plain",
        "x-forwarded-for": "10.0.0.9",
        "x-custom": "kept",
        "proxy-authorization": "secret",
        te: "trailers",
      },
      body: "hello upstream",
    });
    assert.equal(res.status, 200);
    assert.equal(res.body.node, "a");
    assert.equal(res.body.method, "POST");
    assert.equal(res.body.url, "/echo/x?q=1&r=two");
    assert.equal(res.body.body, "hello upstream");
    const h = res.body.headers;
    assert.equal(h["x-custom"], "kept");
    assert.equal(h["x-forwarded-for"], "10.0.0.9, 127.0.0.1");
    assert.equal(h["x-real-ip"], "127.0.0.1");
    assert.equal(h["x-forwarded-proto"], "http");
    assert.equal(h["x-forwarded-host"], "127.0.0.1");
    assert.equal(h.host, new URL(gw.proxyUrl).host, "pass_host defaults to pass");
    assert.equal(h["proxy-authorization"], undefined);
    assert.equal(h.te, undefined);
    assert.match(res.headers.get("server") ?? "", /^Weir\//);
  });

  test("weighted round robin alternates between two nodes", async () => {
    await gw.admin("PUT", "/apisix/admin/upstreams/pair", {
      type: "roundrobin",
      nodes: [
        { host: "127.0.0.1", port: a.port, weight: 1 },
        { host: "127.0.0.1", port: b.port, weight: 1 },
      ],
    });
    await gw.admin("PUT", "/apisix/admin/routes/pair", { uri: "/pair", upstream_id: "pair" });
    const seen: string[] = [];
    for (let i = 0; i < 10; i++) seen.push((await get(`${gw.proxyUrl}/pair`)).body.node);
    assert.equal(seen.filter((n) => n === "a").length, 5);
    assert.equal(seen.filter((n) => n === "b").length, 5);
    for (let i = 1; i < seen.length; i++) assert.notEqual(seen[i], seen[i - 1], `alternates: ${seen.join(",")}`);
  });

  test("pass_host node and rewrite set the upstream Host header", async () => {
    await gw.admin("PUT", "/apisix/admin/routes/host-node", {
      uri: "/host-node",
      upstream: { pass_host: "node", nodes: [{ host: "127.0.0.1", port: a.port, weight: 1 }] },
    });
    await gw.admin("PUT", "/apisix/admin/routes/host-rewrite", {
      uri: "/host-rewrite",
      upstream: {
        pass_host: "rewrite",
        upstream_host: "models.internal",
        nodes: [{ host: "127.0.0.1", port: a.port, weight: 1 }],
      },
    });
    assert.equal((await get(`${gw.proxyUrl}/host-node`)).body.headers.host, `127.0.0.1:${a.port}`);
    assert.equal((await get(`${gw.proxyUrl}/host-rewrite`)).body.headers.host, "models.internal");
  });

  test("a dead node is retried on the next node; the client never sees the failure", async () => {
    const dead = await deadPort();
    await gw.admin("PUT", "/apisix/admin/routes/retry", {
      uri: "/retry",
      upstream: {
        nodes: [
          { host: "127.0.0.1", port: dead, weight: 1 },
          { host: "127.0.0.1", port: a.port, weight: 1 },
        ],
      },
    });
    for (let i = 0; i < 6; i++) {
      const res = await get(`${gw.proxyUrl}/retry`);
      assert.equal(res.status, 200);
      assert.equal(res.body.node, "a");
    }
  });

  test("all nodes dead gives 502 with every attempt in X-APISIX-Upstream-Status", async () => {
    const d1 = await deadPort();
    const d2 = await deadPort();
    await gw.admin("PUT", "/apisix/admin/routes/alldead", {
      uri: "/alldead",
      upstream: {
        nodes: [
          { host: "127.0.0.1", port: d1, weight: 1 },
          { host: "127.0.0.1", port: d2, weight: 1 },
        ],
      },
    });
    const res = await get(`${gw.proxyUrl}/alldead`);
    assert.equal(res.status, 502);
    assert.equal(res.headers.get("x-apisix-upstream-status"), "502, 502");
    assert.equal(typeof res.body.error_msg, "string");
  });

  test("retries: 0 stops after the first failure", async () => {
    const d1 = await deadPort();
    await gw.admin("PUT", "/apisix/admin/routes/noretry", {
      uri: "/noretry",
      upstream: {
        retries: 0,
        nodes: [
          { host: "127.0.0.1", port: d1, weight: 1 },
          { host: "127.0.0.1", port: a.port, weight: 1 },
        ],
      },
    });
    const statuses = new Set<number>();
    for (let i = 0; i < 4; i++) statuses.add((await get(`${gw.proxyUrl}/noretry`)).status);
    assert.deepEqual([...statuses].sort(), [200, 502]);
  });

  test("a read timeout answers 504", async () => {
    const slow = await startUpstream("slow", (_req, res) => {
      setTimeout(() => res.end("late"), 1_500);
    });
    try {
      await gw.admin("PUT", "/apisix/admin/routes/slow", {
        uri: "/slow",
        upstream: {
          retries: 0,
          timeout: { connect: 1, send: 1, read: 0.3 },
          nodes: [{ host: "127.0.0.1", port: slow.port, weight: 1 }],
        },
      });
      const started = Date.now();
      const res = await get(`${gw.proxyUrl}/slow`);
      assert.equal(res.status, 504);
      assert.ok(Date.now() - started < 1_400, "answered before the upstream did");
    } finally {
      await slow.close();
    }
  });

  test("an upstream with no nodes answers 503", async () => {
    await gw.admin("PUT", "/apisix/admin/routes/empty", { uri: "/empty", upstream: { nodes: [] } });
    const res = await get(`${gw.proxyUrl}/empty`);
    assert.equal(res.status, 503);
  });

  test("an upstream dying mid-response cuts only that response", async () => {
    const flaky = await startUpstream("flaky", (_req, res) => {
      res.writeHead(200, { "content-type": "text/plain", "content-length": "1000" });
      res.write("partial");
      setTimeout(() => res.socket?.destroy(), 50);
    });
    try {
      await gw.admin("PUT", "/apisix/admin/routes/flaky", {
        uri: "/flaky",
        upstream: { nodes: [{ host: "127.0.0.1", port: flaky.port, weight: 1 }] },
      });
      await assert.rejects(async () => {
        const res = await fetch(`${gw.proxyUrl}/flaky`);
        await res.text();
      });
      const ok = await get(`${gw.proxyUrl}/pair`);
      assert.equal(ok.status, 200);
    } finally {
      await flaky.close();
    }
  });

  test("a client that disconnects cancels the upstream request", async () => {
    let upstreamClosed: () => void;
    const closed = new Promise<void>((r) => (upstreamClosed = r));
    const hanging = await startUpstream("hanging", (req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: first\n\n");
      const timer = setInterval(() => res.write("data: more\n\n"), 20);
      res.on("close", () => {
        clearInterval(timer);
        upstreamClosed();
      });
      void req;
    });
    try {
      await gw.admin("PUT", "/apisix/admin/routes/hanging", {
        uri: "/hanging",
        upstream: { nodes: [{ host: "127.0.0.1", port: hanging.port, weight: 1 }] },
      });
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(`${gw.proxyUrl}/hanging`, (res) => {
          res.once("data", () => {
            req.destroy();
            resolve();
          });
        });
        req.on("error", () => undefined);
        req.setTimeout(3_000, () => reject(new Error("no data")));
        req.end();
      });
      await Promise.race([
        closed,
        new Promise((_, reject) => setTimeout(() => reject(new Error("upstream was not cancelled")), 3_000)),
      ]);
    } finally {
      await hanging.close();
    }
  });

  test("services supply upstream and plugins to their routes", async () => {
    const svc = await gw.admin("PUT", "/apisix/admin/services/models", {
      upstream: { nodes: [{ host: "127.0.0.1", port: b.port, weight: 1 }] },
    });
    assert.equal(svc.status, 201, JSON.stringify(svc.body));
    await gw.admin("PUT", "/apisix/admin/routes/via-service", { uri: "/via-service", service_id: "models" });
    const res = await get(`${gw.proxyUrl}/via-service`);
    assert.equal(res.status, 200);
    assert.equal(res.body.node, "b");
  });

  test("a route with status 0 is not served", async () => {
    await gw.admin("PUT", "/apisix/admin/routes/disabled", {
      uri: "/disabled",
      status: 0,
      upstream: { nodes: [{ host: "127.0.0.1", port: a.port, weight: 1 }] },
    });
    assert.equal((await get(`${gw.proxyUrl}/disabled`)).status, 404);
  });

  test("large bodies stream both ways intact (chunked upload, 16 MiB download)", async () => {
    const { createHash } = await import("node:crypto");
    const big = Buffer.alloc(16 * 1024 * 1024, "weir-");
    const digest = (b: Buffer) => createHash("sha256").update(b).digest("hex");
    const sink = await startUpstream("sink", (req, res, body) => {
      if (req.method === "POST") {
        res.end(JSON.stringify({ bytes: Buffer.byteLength(body), te: req.headers["transfer-encoding"] ?? null }));
        return;
      }
      res.writeHead(200, { "content-type": "application/octet-stream" });
      res.end(big);
    });
    try {
      await gw.admin("PUT", "/apisix/admin/routes/big", {
        uri: "/big",
        upstream: { nodes: [{ host: "127.0.0.1", port: sink.port, weight: 1 }] },
      });
      const download = Buffer.from(await (await fetch(`${gw.proxyUrl}/big`)).arrayBuffer());
      assert.equal(download.length, big.length);
      assert.equal(digest(download), digest(big));
      const upload = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < 64; i++) controller.enqueue(new Uint8Array(64 * 1024).fill(97));
          controller.close();
        },
      });
      const res = await fetch(`${gw.proxyUrl}/big`, { method: "POST", body: upload, duplex: "half" } as RequestInit);
      assert.deepEqual(await res.json(), { bytes: 64 * 64 * 1024, te: "chunked" });
    } finally {
      await sink.close();
    }
  });

  test("HEAD and bodiless statuses pass through", async () => {
    const odd = await startUpstream("odd", (req, res) => {
      if (req.url === "/odd/204") res.writeHead(204).end();
      else if (req.url === "/odd/304") res.writeHead(304, { etag: '"x"' }).end();
      else
        res
          .writeHead(200, { "content-length": "5", "content-type": "text/plain" })
          .end(req.method === "HEAD" ? undefined : "hello");
    });
    try {
      await gw.admin("PUT", "/apisix/admin/routes/odd", {
        uri: "/odd/*",
        upstream: { nodes: [{ host: "127.0.0.1", port: odd.port, weight: 1 }] },
      });
      assert.equal((await fetch(`${gw.proxyUrl}/odd/204`)).status, 204);
      const notModified = await fetch(`${gw.proxyUrl}/odd/304`);
      assert.equal(notModified.status, 304);
      assert.equal(notModified.headers.get("etag"), '"x"');
      const head = await fetch(`${gw.proxyUrl}/odd/x`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-length"), "5");
    } finally {
      await odd.close();
    }
  });

  test("malformed requests get 400 and the gateway keeps serving", async () => {
    const { connect } = await import("node:net");
    const port = Number(new URL(gw.proxyUrl).port);
    const answer = await new Promise<string>((resolve) => {
      const sock = connect(port, "127.0.0.1", () => sock.write("GARBAGE / HTTP/9.9\r\nfoo\r\n\r\n"));
      let data = "";
      sock.on("data", (d) => (data += d.toString()));
      sock.on("close", () => resolve(data));
      sock.on("error", () => resolve(data));
    });
    assert.match(answer, /^HTTP\/1\.1 400/);
    assert.equal((await get(`${gw.proxyUrl}/pair`)).status, 200);
  });
});

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Gateway } from "../src/gateway.js";
import { pluginRegistry } from "../src/plugins/index.js";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { headerAuth } from "./helpers/header-auth.js";
import { fetchBody } from "./helpers/http.js";
import { startUpstream, type TestUpstream } from "./helpers/upstream.js";

const testAuth = headerAuth({ optional: true });

/** Sends one request with raw header lines (repeated names stay separate lines, unlike fetch). */
function rawGet(url: string, headers: [string, string][]): Promise<{ status: number; body: string }> {
  // An array of header lines gets no default Host from node:http.
  const flat = [["Host", new URL(url).host], ...headers].flat();
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: flat }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode!, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("request security plugins", () => {
  let gw: TestGateway;
  let up: TestUpstream;
  let accessLog: string;
  before(async () => {
    up = await startUpstream("model");
    accessLog = join(mkdtempSync(join(tmpdir(), "weir-sec-")), "access.log");
    gw = await startTestGateway({ extraPlugins: [testAuth], accessLog });
  });
  after(async () => {
    await gw.stop();
    await up.close();
    rmSync(dirname(accessLog), { recursive: true, force: true });
  });

  const upstream = () => ({ nodes: [{ host: "127.0.0.1", port: up.port, weight: 1 }] });
  async function route(id: string, plugins: Record<string, unknown>) {
    const put = await gw.admin("PUT", `/apisix/admin/routes/${id}`, { uri: `/${id}`, plugins, upstream: upstream() });
    assert.ok(put.status === 200 || put.status === 201, JSON.stringify(put.body));
  }
  async function rejected(plugins: Record<string, unknown>): Promise<string> {
    const put = await gw.admin("PUT", "/apisix/admin/routes/bad", { uri: "/bad", plugins, upstream: upstream() });
    assert.equal(put.status, 400, JSON.stringify(put.body));
    return put.body.error_msg as string;
  }

  describe("ip-restriction", () => {
    test("whitelist and blacklist on the socket address, with APISIX's body", async () => {
      await route("ip-white", { "ip-restriction": { whitelist: ["127.0.0.1/32"] } });
      await route("ip-black", {
        "ip-restriction": { blacklist: ["127.0.0.0/8"], response_code: 404, message: "hidden" },
      });
      assert.equal((await fetchBody(`${gw.proxyUrl}/ip-white`)).status, 200);
      const black = await fetchBody(`${gw.proxyUrl}/ip-black`);
      assert.equal(black.status, 404);
      assert.deepEqual(black.body, { message: "hidden" });
    });

    test("/0 and ::/0 CIDRs", async () => {
      await route("ip-all", { "ip-restriction": { blacklist: ["0.0.0.0/0"] } });
      await route("ip-v6", { "ip-restriction": { blacklist: ["::/0"] } });
      const all = await fetchBody(`${gw.proxyUrl}/ip-all`);
      assert.equal(all.status, 403);
      assert.deepEqual(all.body, { message: "Your IP address is not allowed" });
      assert.equal((await fetchBody(`${gw.proxyUrl}/ip-v6`)).status, 200, "an IPv4 client is not in ::/0");
    });

    test("bad config is a 400 naming the field", async () => {
      assert.match(
        await rejected({ "ip-restriction": { whitelist: ["1.1.1.1"], blacklist: ["2.2.2.2"] } }),
        /only one/,
      );
      assert.match(await rejected({ "ip-restriction": { whitelist: ["1.1.1.300"] } }), /whitelist/);
      assert.match(
        await rejected({ "ip-restriction": { whitelist: ["1.1.1.1"], response_code: 500 } }),
        /response_code/,
      );
    });
  });

  describe("real-ip", () => {
    test("a spoofed X-Forwarded-For from an untrusted peer is ignored", async () => {
      await route("spoof", {
        "real-ip": { source: "http_x_forwarded_for", trusted_addresses: ["10.0.0.0/8"] },
        "ip-restriction": { whitelist: ["1.1.1.1"] },
      });
      await route("spoof-black", {
        "real-ip": { source: "http_x_forwarded_for", trusted_addresses: ["10.0.0.0/8"] },
        "ip-restriction": { blacklist: ["127.0.0.1"] },
      });
      await route("spoof-echo", { "real-ip": { source: "http_x_forwarded_for", trusted_addresses: ["10.0.0.0/8"] } });
      const headers = { "X-Forwarded-For": "1.1.1.1" };
      assert.equal((await fetchBody(`${gw.proxyUrl}/spoof`, { headers })).status, 403, "not let in as 1.1.1.1");
      assert.equal((await fetchBody(`${gw.proxyUrl}/spoof-black`, { headers })).status, 403, "still blocked");
      const echo = await fetchBody(`${gw.proxyUrl}/spoof-echo`, { headers });
      assert.equal(echo.body.headers["x-real-ip"], "127.0.0.1");
      assert.equal(echo.body.headers["x-forwarded-for"], "1.1.1.1, 127.0.0.1");
    });

    test("without trusted_addresses the header is never trusted", async () => {
      await route("untrusted", { "real-ip": { source: "http_x_forwarded_for" } });
      const echo = await fetchBody(`${gw.proxyUrl}/untrusted`, { headers: { "X-Forwarded-For": "1.1.1.1" } });
      assert.equal(echo.body.headers["x-real-ip"], "127.0.0.1");
    });

    test("behind trusted proxies, recursive picks the client hop for every later stage", async () => {
      await route("hops", {
        "real-ip": {
          source: "http_x_forwarded_for",
          trusted_addresses: ["127.0.0.0/24", "192.128.0.0/16"],
          recursive: true,
        },
        "ip-restriction": { whitelist: ["1.1.1.1"] },
        "proxy-rewrite": {
          uri: "/hops-logged",
          headers: { set: { "X-Seen-Client": "$remote_addr", "X-Seen-Peer": "$realip_remote_addr" } },
        },
      });
      const res = await fetchBody(`${gw.proxyUrl}/hops`, {
        headers: { "X-Forwarded-For": "1.1.1.1, 192.128.1.1, 127.0.0.1" },
      });
      assert.equal(res.status, 200, "ip-restriction saw 1.1.1.1");
      const seen = res.body.headers;
      assert.equal(seen["x-seen-client"], "1.1.1.1");
      assert.equal(seen["x-seen-peer"], "127.0.0.1");
      assert.equal(seen["x-real-ip"], "1.1.1.1");
      // nginx's $proxy_add_x_forwarded_for: the received list plus the (real-ip) $remote_addr.
      assert.equal(seen["x-forwarded-for"], "1.1.1.1, 192.128.1.1, 127.0.0.1, 1.1.1.1");

      const spoof = await fetchBody(`${gw.proxyUrl}/hops`, {
        headers: { "X-Forwarded-For": "1.1.1.1, 203.0.113.7, 192.128.1.1" },
      });
      assert.equal(spoof.status, 403, "the first untrusted hop from the right is the client, not what it claims");

      let line: string | undefined;
      for (let i = 0; i < 100 && line === undefined; i++) {
        line = readFileSync(accessLog, "utf8")
          .split("\n")
          .find((l) => l.includes("/hops-logged") && l.includes(" 200 "));
        if (line === undefined) await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(line?.startsWith("1.1.1.1 "), `access log names the real client: ${line}`);
    });

    test("APISIX's example: address and port from a query argument", async () => {
      await route("by-arg", {
        "real-ip": { source: "arg_realip", trusted_addresses: ["127.0.0.0/24"] },
        "proxy-rewrite": { headers: { set: { "X-Port": "$remote_port" } } },
      });
      const res = await fetchBody(`${gw.proxyUrl}/by-arg?realip=1.2.3.4:9080`);
      assert.equal(res.body.headers["x-real-ip"], "1.2.3.4");
      assert.equal(res.body.headers["x-port"], "9080");
    });

    test("bad config is a 400 naming the field", async () => {
      assert.match(await rejected({ "real-ip": {} }), /source/);
      assert.match(await rejected({ "real-ip": { source: "x", trusted_addresses: ["10.0.0.0/40"] } }), /trusted/);
    });
  });

  describe("an IPv4-mapped IPv6 peer", () => {
    let dual: Gateway;
    before(async () => {
      // A second data plane on the dual-stack wildcard, reading the same store: IPv4 clients arrive there
      // as ::ffff:a.b.c.d sockets.
      dual = new Gateway(
        {
          dataDir: gw.dataDir,
          proxy: { listen: [{ host: "::", port: 0 }] },
          admin: { enabled: false, listen: { host: "127.0.0.1", port: 0 }, keys: [], allow: [] },
          control: { enabled: false, listen: { host: "127.0.0.1", port: 0 } },
          metrics: { enabled: false, listen: { host: "127.0.0.1", port: 0 }, uri: "/metrics", prefix: "apisix_" },
          store: { provider: "embedded" },
          plugins: [...pluginRegistry.keys()],
          accessLog: { path: null },
          shutdownTimeoutMs: 1_000,
        },
        { store: gw.gateway.configStore, log: () => {} },
      );
      await dual.start();
    });
    after(async () => {
      await dual.stop({ timeoutMs: 1_000 });
    });

    test("matches 127.0.0.1/32 in ip-restriction and real-ip", async () => {
      await route("mapped", {
        "real-ip": { source: "http_x_real_ip", trusted_addresses: ["127.0.0.1/32"] },
        "ip-restriction": { whitelist: ["127.0.0.1/32", "1.1.1.1"] },
      });
      const target = gw.gateway.configStore.revision();
      for (let i = 0; i < 200 && dual.configSync.current.revision < target; i++) {
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.equal(dual.proxyAddresses[0]!.host, "::", "the socket peer is ::ffff:127.0.0.1 there");
      const url = `http://127.0.0.1:${dual.proxyAddresses[0]!.port}/mapped`;
      const plain = await fetchBody(url);
      assert.equal(plain.status, 200);
      assert.equal(plain.body.headers["x-real-ip"], "127.0.0.1");
      const relayed = await fetchBody(url, { headers: { "X-Real-IP": "1.1.1.1" } });
      assert.equal(relayed.status, 200);
      assert.equal(relayed.body.headers["x-real-ip"], "1.1.1.1", "the mapped peer counted as trusted");
    });
  });

  describe("ua-restriction", () => {
    test("denylist refuses matching agents, one line or several", async () => {
      await route("ua-deny", { "ua-restriction": { denylist: ["my-bot1", "(Baiduspider)/(\\d+)\\.(\\d+)"] } });
      const url = `${gw.proxyUrl}/ua-deny`;
      const bot = await fetchBody(url, { headers: { "User-Agent": "Baiduspider/3.0" } });
      assert.equal(bot.status, 403);
      assert.deepEqual(bot.body, { message: "Not allowed" });
      assert.equal((await fetchBody(url, { headers: { "User-Agent": "foo/bar" } })).status, 200);
      const two = await rawGet(url, [
        ["User-Agent", "foo/bar"],
        ["User-Agent", "my-bot1"],
      ]);
      assert.equal(two.status, 403, "a denied second line is not hidden behind a clean first one");
    });

    test("allowlist with bypass_missing", async () => {
      await route("ua-allow", { "ua-restriction": { allowlist: ["^curl/"], bypass_missing: true } });
      const url = `${gw.proxyUrl}/ua-allow`;
      assert.equal((await rawGet(url, [["User-Agent", "curl/8.5.0"]])).status, 200);
      assert.equal((await rawGet(url, [["User-Agent", "python-requests/2"]])).status, 403);
      assert.equal((await rawGet(url, [])).status, 200, "no User-Agent at all is bypassed");
    });

    test("a catastrophic-backtracking or invalid regex is refused with a 400 naming the entry", async () => {
      assert.match(await rejected({ "ua-restriction": { denylist: ["ok", "(a+)+\\1$"] } }), /denylist\[1\].*backtrack/);
      assert.match(await rejected({ "ua-restriction": { allowlist: ["[z-a]"] } }), /allowlist\[0\]/);
    });

    test("an exponential pattern against a hostile User-Agent answers at once: the gateway bounds every regex", {
      timeout: 10_000,
    }, async () => {
      // Minutes of backtracking each without V8's linear-time fallback, which the gateway switches on.
      await route("ua-exponential", { "ua-restriction": { denylist: ["^(a+)+$", "(a|aa)+$"] } });
      const res = await rawGet(`${gw.proxyUrl}/ua-exponential`, [["User-Agent", `${"a".repeat(1000)}!`]]);
      assert.equal(res.status, 200);
    });

    test("an oversized User-Agent is refused quickly", async () => {
      await route("ua-long", { "ua-restriction": { denylist: ["a*a*b"] } });
      const started = Date.now();
      const res = await rawGet(`${gw.proxyUrl}/ua-long`, [["User-Agent", "a".repeat(8000)]]);
      assert.equal(res.status, 403);
      assert.ok(Date.now() - started < 2_000);
    });
  });

  describe("referer-restriction", () => {
    test("wildcard matches subdomains only; look-alikes do not match", async () => {
      await route("ref-wild", { "referer-restriction": { whitelist: ["*.example.org"] } });
      await route("ref-exact", { "referer-restriction": { whitelist: ["example.org"] } });
      const call = (id: string, referer: string) =>
        fetchBody(`${gw.proxyUrl}/${id}`, { headers: { Referer: referer } }).then((r) => r.status);
      assert.equal(await call("ref-wild", "http://evil.com.example.org/page"), 200);
      assert.equal(await call("ref-wild", "http://example.org/"), 403);
      assert.equal(await call("ref-wild", "http://example.org.evil.com/"), 403);
      assert.equal(await call("ref-exact", "https://example.org/x"), 200);
      assert.equal(await call("ref-exact", "http://example.org.evil.com/"), 403);
      assert.equal(await call("ref-exact", "http://example.org@evil.com/"), 403);
      const missing = await fetchBody(`${gw.proxyUrl}/ref-exact`);
      assert.equal(missing.status, 403);
      assert.deepEqual(missing.body, { message: "Your referer host is not allowed" });
    });

    test("blacklist with bypass_missing", async () => {
      await route("ref-black", { "referer-restriction": { blacklist: ["evil.com"], bypass_missing: true } });
      const call = (headers: Record<string, string>) =>
        fetchBody(`${gw.proxyUrl}/ref-black`, { headers }).then((r) => r.status);
      assert.equal(await call({ Referer: "http://EVIL.com./x" }), 403);
      assert.equal(await call({ Referer: "http://good.com/" }), 200);
      assert.equal(await call({}), 200);
    });

    test("bad config is a 400 naming the field", async () => {
      assert.match(await rejected({ "referer-restriction": { whitelist: ["a/b"] } }), /whitelist/);
    });
  });

  describe("consumer-restriction", () => {
    before(async () => {
      assert.equal((await gw.admin("PUT", "/apisix/admin/consumer_groups/gold", { plugins: {} })).status, 201);
      for (const [username, group] of [
        ["jack", "gold"],
        ["rose", undefined],
      ] as const) {
        const put = await gw.admin("PUT", "/apisix/admin/consumers", {
          username,
          ...(group === undefined ? {} : { group_id: group }),
          plugins: { "test-auth": { user: username } },
        });
        assert.equal(put.status, 201, JSON.stringify(put.body));
      }
    });

    const call = (id: string, user?: string, method = "GET") =>
      fetchBody(`${gw.proxyUrl}/${id}`, { method, headers: user === undefined ? {} : { "x-test-user": user } });

    test("whitelist by consumer name after authentication", async () => {
      await route("cr-name", { "test-auth": {}, "consumer-restriction": { whitelist: ["jack"] } });
      assert.equal((await call("cr-name", "jack")).status, 200);
      const rose = await call("cr-name", "rose");
      assert.equal(rose.status, 403);
      assert.deepEqual(rose.body, { message: "The consumer_name is forbidden." });
      const anonymous = await call("cr-name");
      assert.equal(anonymous.status, 401);
      assert.deepEqual(anonymous.body, {
        message: "The request is rejected, please check the consumer_name for this request",
      });
    });

    test("consumer groups, methods and custom rejections", async () => {
      await route("cr-group", {
        "test-auth": {},
        "consumer-restriction": { type: "consumer_group_id", whitelist: ["gold"] },
      });
      assert.equal((await call("cr-group", "jack")).status, 200);
      assert.equal((await call("cr-group", "rose")).status, 401, "rose belongs to no group");
      await route("cr-methods", {
        "test-auth": {},
        "consumer-restriction": {
          allowed_by_methods: [{ user: "rose", methods: ["POST"] }],
          rejected_code: 405,
          rejected_msg: "read-only for you",
        },
      });
      const get = await call("cr-methods", "rose");
      assert.equal(get.status, 405);
      assert.deepEqual(get.body, { message: "read-only for you" });
      assert.equal((await call("cr-methods", "rose", "POST")).status, 200);
      assert.equal((await call("cr-methods", "jack")).status, 200);
    });

    test("route_id restriction needs no consumer", async () => {
      await route("cr-route", { "consumer-restriction": { type: "route_id", blacklist: ["cr-route"] } });
      const res = await call("cr-route");
      assert.equal(res.status, 403);
      assert.deepEqual(res.body, { message: "The route_id is forbidden." });
    });
  });
});

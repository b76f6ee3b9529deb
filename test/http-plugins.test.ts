// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${name} is the APISIX template syntax under test
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { fetchBody } from "./helpers/http.js";
import { startUpstream, type TestUpstream } from "./helpers/upstream.js";

describe("http plugins: cors, csrf, request-validation, client-control, response-rewrite, redirect", () => {
  let gw: TestGateway;
  let up: TestUpstream;
  const nodes = () => [{ host: "127.0.0.1", port: up.port, weight: 1 }];
  const route = async (id: string, uri: string, plugins: Record<string, unknown>, upstreamPort?: number) => {
    const res = await gw.admin("PUT", `/apisix/admin/routes/${id}`, {
      uri,
      plugins,
      upstream: { nodes: [{ host: "127.0.0.1", port: upstreamPort ?? up.port, weight: 1 }] },
    });
    assert.ok(res.status === 200 || res.status === 201, JSON.stringify(res.body));
  };
  const rejected = async (plugins: Record<string, unknown>) => {
    const res = await gw.admin("PUT", "/apisix/admin/routes/bad", {
      uri: "/bad",
      plugins,
      upstream: { nodes: nodes() },
    });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    return res.body.error_msg as string;
  };

  before(async () => {
    gw = await startTestGateway();
    up = await startUpstream("echo");
  });
  after(async () => {
    await gw.stop();
    await up.close();
  });

  // ---- cors ---------------------------------------------------------------------------------------------

  describe("cors", () => {
    const docConf = {
      allow_origins: "http://sub.domain.com,http://sub2.domain.com",
      allow_methods: "GET,POST",
      allow_headers: "headr1,headr2",
      expose_headers: "ex-headr1,ex-headr2",
      max_age: 50,
      allow_credential: true,
    };

    test("APISIX doc example: a listed origin gets every CORS header, another gets none", async () => {
      await route("cors-doc", "/cors/doc", { cors: docConf });
      const ok = await fetchBody(`${gw.proxyUrl}/cors/doc`, { headers: { Origin: "http://sub2.domain.com" } });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get("access-control-allow-origin"), "http://sub2.domain.com");
      assert.equal(ok.headers.get("access-control-allow-credentials"), "true");
      assert.equal(ok.headers.get("access-control-allow-methods"), "GET,POST");
      assert.equal(ok.headers.get("access-control-allow-headers"), "headr1,headr2");
      assert.equal(ok.headers.get("access-control-expose-headers"), "ex-headr1,ex-headr2");
      assert.equal(ok.headers.get("access-control-max-age"), "50");
      assert.equal(ok.headers.get("vary"), "Origin");

      const other = await fetchBody(`${gw.proxyUrl}/cors/doc`, { headers: { Origin: "http://sub3.domain.com" } });
      assert.equal(other.status, 200);
      for (const h of ["allow-origin", "allow-credentials", "allow-methods", "allow-headers", "max-age"]) {
        assert.equal(other.headers.get(`access-control-${h}`), null, h);
      }
      assert.equal(other.headers.get("vary"), "Origin", "caches must still key on Origin");
    });

    test("preflight OPTIONS is answered with 200 by the gateway, the upstream never sees it", async () => {
      await route("cors-pre", "/cors/pre", { cors: docConf });
      const before = up.received.length;
      const res = await fetchBody(`${gw.proxyUrl}/cors/pre`, {
        method: "OPTIONS",
        headers: { Origin: "http://sub.domain.com", "Access-Control-Request-Method": "POST" },
      });
      assert.equal(res.status, 200);
      assert.equal(res.body, "");
      assert.equal(res.headers.get("access-control-allow-origin"), "http://sub.domain.com");
      assert.equal(res.headers.get("access-control-allow-methods"), "GET,POST");
      assert.equal(up.received.length, before, "no upstream call");
    });

    test("attack: an arbitrary Origin is never reflected, even when the upstream reflects it", async () => {
      const reflecting = await startUpstream("reflect", (req, res) => {
        res.writeHead(200, {
          "access-control-allow-origin": String(req.headers.origin),
          "access-control-allow-credentials": "true",
        });
        res.end("ok");
      });
      try {
        await route("cors-evil", "/cors/evil", { cors: docConf }, reflecting.port);
        const evil = await fetchBody(`${gw.proxyUrl}/cors/evil`, { headers: { Origin: "https://evil.example" } });
        assert.equal(evil.status, 200);
        assert.equal(evil.headers.get("access-control-allow-origin"), null);
        assert.equal(evil.headers.get("access-control-allow-credentials"), null);
        const good = await fetchBody(`${gw.proxyUrl}/cors/evil`, { headers: { Origin: "http://sub.domain.com" } });
        assert.equal(good.headers.get("access-control-allow-origin"), "http://sub.domain.com");

        await route("cors-single", "/cors/single", { cors: { allow_origins: "https://app.example" } });
        const single = await fetchBody(`${gw.proxyUrl}/cors/single`, { headers: { Origin: "https://evil.example" } });
        assert.equal(single.headers.get("access-control-allow-origin"), null, "a single allowed origin is not sent");
      } finally {
        await reflecting.close();
      }
    });

    test("attack: the `null` origin is refused by lists and by **, allowed only when listed as null", async () => {
      await route("cors-list", "/cors/list", { cors: docConf });
      const listed = await fetchBody(`${gw.proxyUrl}/cors/list`, { headers: { Origin: "null" } });
      assert.equal(listed.headers.get("access-control-allow-origin"), null);

      await route("cors-star2", "/cors/star2", {
        cors: { allow_origins: "**", allow_methods: "**", allow_headers: "**", allow_credential: true },
      });
      const echo = await fetchBody(`${gw.proxyUrl}/cors/star2`, {
        headers: { Origin: "https://any.example", "Access-Control-Request-Headers": "x-a,x-b" },
      });
      assert.equal(echo.headers.get("access-control-allow-origin"), "https://any.example", "** echoes");
      assert.equal(echo.headers.get("access-control-allow-headers"), "x-a,x-b");
      assert.equal(
        echo.headers.get("access-control-allow-methods"),
        "GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE",
      );
      const nul = await fetchBody(`${gw.proxyUrl}/cors/star2`, { headers: { Origin: "null" } });
      assert.equal(nul.headers.get("access-control-allow-origin"), null, "** does not hand null credentials");

      await route("cors-null", "/cors/null", { cors: { allow_origins: "null" } });
      const explicit = await fetchBody(`${gw.proxyUrl}/cors/null`, { headers: { Origin: "null" } });
      assert.equal(explicit.headers.get("access-control-allow-origin"), "null");
    });

    test("attack: credentials with `*` are refused at config time", async () => {
      const msg = await rejected({ cors: { allow_credential: true } });
      assert.match(msg, /you can not set '\*' for other option when 'allow_credential' is true/);
      const msg2 = await rejected({ cors: { ...docConf, expose_headers: "*" } });
      assert.match(msg2, /allow_credential/);
      assert.match(
        await rejected({ cors: { allow_origins: "evil.example" } }),
        /property "allow_origins" validation failed/,
      );
      assert.match(await rejected({ cors: { allow_origins_by_regex: ["("] } }), /allow_origins_by_regex\[0\]/);
    });

    test("default `*` allows any origin without Vary; regexes match, unanchored like APISIX", async () => {
      await route("cors-star", "/cors/star", { cors: {} });
      const star = await fetchBody(`${gw.proxyUrl}/cors/star`, { headers: { Origin: "https://x.example" } });
      assert.equal(star.headers.get("access-control-allow-origin"), "*");
      assert.equal(star.headers.get("access-control-allow-methods"), "*");
      assert.equal(star.headers.get("vary"), null);

      await route("cors-re", "/cors/re", {
        cors: {
          allow_origins_by_regex: ["^http://.*\\.test\\.com$"],
          timing_allow_origins_by_regex: ["\\.test\\.com$"],
        },
      });
      const sub = await fetchBody(`${gw.proxyUrl}/cors/re`, { headers: { Origin: "http://a.test.com" } });
      assert.equal(sub.headers.get("access-control-allow-origin"), "http://a.test.com");
      assert.equal(sub.headers.get("timing-allow-origin"), "http://a.test.com");
      assert.equal(sub.headers.get("vary"), "Origin");
      const tricked = await fetchBody(`${gw.proxyUrl}/cors/re`, { headers: { Origin: "http://a.test.com.evil.io" } });
      assert.equal(tricked.headers.get("access-control-allow-origin"), null);
      assert.equal(tricked.headers.get("timing-allow-origin"), null);
    });

    test("allow_origins_by_metadata reads plugin_metadata, and follows its updates", async () => {
      const meta = await gw.admin("PUT", "/apisix/admin/plugin_metadata/cors", {
        allow_origins: { key_1: "https://domain.com", key_2: "https://sub.domain.com,https://sub2.domain.com" },
      });
      assert.ok(meta.status === 200 || meta.status === 201, JSON.stringify(meta.body));
      await route("cors-meta", "/cors/meta", {
        cors: { allow_methods: "GET,POST", allow_origins_by_metadata: ["key_1"] },
      });
      const hit = await fetchBody(`${gw.proxyUrl}/cors/meta`, { headers: { Origin: "https://domain.com" } });
      assert.equal(hit.headers.get("access-control-allow-origin"), "https://domain.com");
      assert.equal(hit.headers.get("vary"), "Origin");
      const miss = await fetchBody(`${gw.proxyUrl}/cors/meta`, { headers: { Origin: "https://sub.domain.com" } });
      assert.equal(miss.headers.get("access-control-allow-origin"), null, "key_2 is not referenced");

      await gw.admin("PUT", "/apisix/admin/plugin_metadata/cors", { allow_origins: { key_1: "https://other.com" } });
      const moved = await fetchBody(`${gw.proxyUrl}/cors/meta`, { headers: { Origin: "https://domain.com" } });
      assert.equal(moved.headers.get("access-control-allow-origin"), null, "the new metadata applies");
      const bad = await gw.admin("PUT", "/apisix/admin/plugin_metadata/cors", { allow_origins: { k: "nope" } });
      assert.equal(bad.status, 400);
    });
  });

  // ---- csrf ---------------------------------------------------------------------------------------------

  describe("csrf", () => {
    const cookieOf = (res: { headers: Headers }) => {
      const line = res.headers.getSetCookie().find((c) => c.startsWith("apisix-csrf-token="));
      assert.ok(line, "the token cookie is set");
      assert.match(line, /;path=\/;SameSite=Lax;Expires=\w{3}, \d{2}-\w{3}-\d{4} \d{2}:\d{2}:\d{2} GMT$/);
      return line.slice("apisix-csrf-token=".length, line.indexOf(";"));
    };

    test("safe methods get a token cookie; unsafe ones need the same token in the header", async () => {
      await route("csrf", "/csrf", { csrf: { key: "csrf-secret-key" } });
      const get = await fetchBody(`${gw.proxyUrl}/csrf`);
      assert.equal(get.status, 200);
      const token = cookieOf(get);

      const post = (headers: Record<string, string>) =>
        fetchBody(`${gw.proxyUrl}/csrf`, { method: "POST", headers, body: "x" });
      const missing = await post({});
      assert.equal(missing.status, 401);
      assert.deepEqual(missing.body, { error_msg: "no csrf token in headers" });
      cookieOf(missing); // every response renews the cookie, rejections too
      assert.deepEqual((await post({ "apisix-csrf-token": token })).body, { error_msg: "no csrf cookie" });
      assert.deepEqual((await post({ "apisix-csrf-token": token, Cookie: "apisix-csrf-token=other" })).body, {
        error_msg: "csrf token mismatch",
      });
      const ok = await post({ "apisix-csrf-token": token, Cookie: `apisix-csrf-token=${token}` });
      assert.equal(ok.status, 200);
      assert.equal(ok.body.method, "POST");
    });

    test("attack: a forged or tampered token fails the signature check", async () => {
      await route("csrf2", "/csrf2", { csrf: { key: "csrf-secret-key", name: "x-csrf" } });
      const token = (await fetchBody(`${gw.proxyUrl}/csrf2`)).headers
        .getSetCookie()
        .find((c) => c.startsWith("x-csrf="))!
        .split(";")[0]!
        .slice(7);
      const decoded = JSON.parse(Buffer.from(token, "base64").toString());
      const forged = [
        Buffer.from(JSON.stringify({ random: "1", expires: Math.floor(Date.now() / 1000), sign: "0".repeat(64) })),
        Buffer.from(JSON.stringify({ ...decoded, random: `${decoded.random}0` })),
        Buffer.from(JSON.stringify({ ...decoded, expires: decoded.expires + 1 })),
        Buffer.from("not json at all"),
      ].map((b) => b.toString("base64"));
      for (const f of forged) {
        const res = await fetchBody(`${gw.proxyUrl}/csrf2`, {
          method: "DELETE",
          headers: { "x-csrf": f, Cookie: `x-csrf=${f}` },
        });
        assert.equal(res.status, 401, f);
        assert.deepEqual(res.body, { error_msg: "Failed to verify the csrf token signature" });
      }
      const res = await fetchBody(`${gw.proxyUrl}/csrf2`, {
        method: "DELETE",
        headers: { "x-csrf": token, Cookie: `x-csrf=${token}` },
      });
      assert.equal(res.status, 200, "the genuine token still works");
    });

    test("attack: an expired token is refused", async () => {
      await route("csrf3", "/csrf3", { csrf: { key: "k", expires: 1 } });
      const token = (await fetchBody(`${gw.proxyUrl}/csrf3`)).headers
        .getSetCookie()[0]!
        .split(";")[0]!
        .slice("apisix-csrf-token=".length);
      await new Promise((r) => setTimeout(r, 2_100));
      const res = await fetchBody(`${gw.proxyUrl}/csrf3`, {
        method: "POST",
        headers: { "apisix-csrf-token": token, Cookie: `apisix-csrf-token=${token}` },
      });
      assert.equal(res.status, 401);
      assert.deepEqual(res.body, { error_msg: "Failed to verify the csrf token signature" });
    });

    test("key is required", async () => {
      assert.match(await rejected({ csrf: {} }), /property "key" is required/);
    });
  });

  // ---- request-validation ----------------------------------------------------------------------------------

  describe("request-validation", () => {
    const bodySchema = {
      type: "object",
      required: ["required_payload"],
      properties: {
        required_payload: { type: "string" },
        boolean_payload: { type: "boolean" },
        array_payload: { type: "array", minItems: 1, items: { type: "integer", minimum: 200, maximum: 599 } },
      },
    };

    test("APISIX doc example: header_schema with mixed-case names, messages name the header", async () => {
      await route("rv-h", "/rv/headers", {
        "request-validation": {
          header_schema: {
            type: "object",
            required: ["User-Agent", "Host"],
            properties: {
              "User-Agent": { type: "string", pattern: "^curl/" },
              Host: { type: "string", enum: ["httpbin.org", "httpbin"] },
            },
          },
        },
      });
      const send = (headers: Record<string, string>) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = request(`${gw.proxyUrl}/rv/headers`, { headers }, (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (c) => (body += c));
            res.on("end", () => resolve({ status: res.statusCode!, body }));
          });
          req.on("error", reject);
          req.end();
        });
      assert.equal((await send({ Host: "httpbin", "User-Agent": "curl/8.0" })).status, 200);
      assert.deepEqual(await send({ Host: "127.0.0.1", "User-Agent": "curl/8.0" }), {
        status: 400,
        body: 'property "Host" validation failed: matches none of the enum values',
      });
      assert.deepEqual(await send({ Host: "httpbin", "User-Agent": "cli-mock" }), {
        status: 400,
        body: 'property "User-Agent" validation failed: failed to match pattern "^curl/" with "cli-mock"',
      });
    });

    test("JSON body: valid passes (re-serialized), missing field and wrong types are refused", async () => {
      await route("rv-b", "/rv/body", { "request-validation": { body_schema: bodySchema } });
      const post = (body: string, type = "application/json") =>
        fetchBody(`${gw.proxyUrl}/rv/body`, { method: "POST", headers: { "Content-Type": type }, body });
      const ok = await post('{"required_payload":"hello", "array_payload":[301]}');
      assert.equal(ok.status, 200);
      assert.equal(ok.body.body, '{"required_payload":"hello","array_payload":[301]}');
      const missing = await post("{}");
      assert.equal(missing.status, 400);
      assert.equal(missing.body, 'property "required_payload" is required');
      const wrong = await post('{"required_payload":"x","array_payload":[100]}');
      assert.equal(wrong.status, 400);
      assert.match(wrong.body, /property "array_payload\[0\]" validation failed: expected 100 to be at least 200/);
    });

    test("attack: a body that is not JSON, or JSON with duplicate keys, cannot slip past", async () => {
      await route("rv-j", "/rv/json", { "request-validation": { body_schema: bodySchema } });
      const before = up.received.length;
      const notJson = await fetchBody(`${gw.proxyUrl}/rv/json`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: "required_payload=hello",
      });
      assert.equal(notJson.status, 400);
      assert.match(notJson.body, /^failed to decode the req body: /);
      const empty = await fetchBody(`${gw.proxyUrl}/rv/json`, { method: "POST" });
      assert.equal(empty.status, 400);
      assert.equal(up.received.length, before, "nothing reached the upstream");
      // The validator sees the last "required_payload"; the upstream gets exactly what was validated.
      const dup = await fetchBody(`${gw.proxyUrl}/rv/json`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: '{"required_payload": 1, "required_payload": "ok"}',
      });
      assert.equal(dup.status, 200);
      assert.equal(dup.body.body, '{"required_payload":"ok"}');
    });

    test("urlencoded bodies, custom rejected_code and rejected_msg", async () => {
      await route("rv-f", "/rv/form", {
        "request-validation": {
          body_schema: {
            type: "object",
            required: ["required_payload", "enum_payload"],
            properties: { enum_payload: { type: "string", enum: ["enum_string_1", "enum_string_2"] } },
          },
          rejected_code: 403,
          rejected_msg: "Request body validation failed.",
        },
      });
      const post = (body: string) =>
        fetchBody(`${gw.proxyUrl}/rv/form`, {
          method: "POST",
          headers: { "Content-Type": "application/x-www-form-urlencoded" },
          body,
        });
      const ok = await post("required_payload=hello&enum_payload=enum_string_1");
      assert.equal(ok.status, 200);
      assert.equal(ok.body.body, "required_payload=hello&enum_payload=enum_string_1", "form bodies pass unchanged");
      assert.deepEqual(await post("required_payload=hello").then((r) => [r.status, r.body]), [
        403,
        "Request body validation failed.",
      ]);
    });

    test("invalid schemas and configs are refused by the Admin API", async () => {
      assert.match(await rejected({ "request-validation": {} }), /object matches none of the required/);
      assert.match(
        await rejected({ "request-validation": { body_schema: { type: "strin" } } }),
        /body_schema: schema is invalid/,
      );
      assert.match(
        await rejected({ "request-validation": { header_schema: { type: "object" }, rejected_code: 600 } }),
        /rejected_code/,
      );
    });
  });

  // ---- client-control -------------------------------------------------------------------------------------

  describe("client-control", () => {
    let counting: Server;
    let countingPort: number;
    let received = 0;
    before(async () => {
      counting = createServer((req: IncomingMessage, res) => {
        req.on("data", (c: Buffer) => (received += c.length));
        req.on("end", () => res.end(String(received)));
        req.on("error", () => {});
      });
      await new Promise<void>((r) => counting.listen(0, "127.0.0.1", r));
      countingPort = (counting.address() as AddressInfo).port;
    });
    after(async () => {
      counting.closeAllConnections();
      await new Promise((r) => counting.close(r));
    });

    /** Streams `total` bytes chunked; resolves with the status and how much had been written by then. */
    const upload = (path: string, total: number) =>
      new Promise<{ status: number; written: number; body: string }>((resolve, reject) => {
        const chunk = Buffer.alloc(64 * 1024, 97);
        let written = 0;
        let answered = false;
        const req = request(`${gw.proxyUrl}${path}`, { method: "POST", agent: false }, (res) => {
          answered = true;
          const at = written;
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c) => (body += c));
          res.on("end", () => {
            req.destroy();
            resolve({ status: res.statusCode!, written: at, body });
          });
        });
        req.on("error", (err) => (answered ? undefined : reject(err)));
        const pump = () => {
          while (!answered && written < total) {
            written += chunk.length;
            if (!req.write(chunk)) return void req.once("drain", pump);
          }
          if (!answered) req.end();
        };
        pump();
      });

    test("a declared Content-Length over max_body_size is refused with 413 before the upstream", async () => {
      await route("cc", "/cc", { "client-control": { max_body_size: 1 } }, countingPort);
      received = 0;
      const res = await fetchBody(`${gw.proxyUrl}/cc`, { method: "POST", body: "ab" });
      assert.equal(res.status, 413);
      assert.equal(received, 0);
      assert.equal((await fetchBody(`${gw.proxyUrl}/cc`, { method: "POST", body: "a" })).status, 200);
    });

    test("attack: a 100 MB chunked upload against 1 MB is cut with 413, never buffered", async () => {
      await route("cc-big", "/cc/big", { "client-control": { max_body_size: 1024 * 1024 } }, countingPort);
      received = 0;
      const memBefore = process.memoryUsage().arrayBuffers;
      const res = await upload("/cc/big", 100 * 1024 * 1024);
      assert.equal(res.status, 413);
      assert.deepEqual(JSON.parse(res.body), { error_msg: "request body exceeds 1048576 bytes" });
      assert.ok(res.written < 50 * 1024 * 1024, `answered after ${res.written} bytes`);
      assert.ok(received <= 1024 * 1024, `upstream got ${received} bytes`);
      const grown = process.memoryUsage().arrayBuffers - memBefore;
      assert.ok(grown < 48 * 1024 * 1024, `memory grew by ${grown} bytes`);
    });

    test("chunked bodies under the limit stream through; 0 means no limit", async () => {
      await route("cc-ok", "/cc/ok", { "client-control": { max_body_size: 1024 * 1024 } }, countingPort);
      received = 0;
      const ok = await upload("/cc/ok", 512 * 1024);
      assert.equal(ok.status, 200);
      assert.equal(ok.body, String(512 * 1024));
      await route("cc-0", "/cc/0", { "client-control": { max_body_size: 0 } }, countingPort);
      received = 0;
      const unlimited = await upload("/cc/0", 4 * 1024 * 1024);
      assert.equal(unlimited.status, 200);
      assert.equal(unlimited.body, String(4 * 1024 * 1024));
      assert.match(await rejected({ "client-control": { max_body_size: -1 } }), /max_body_size/);
    });
  });

  // ---- response-rewrite -----------------------------------------------------------------------------------

  describe("response-rewrite", () => {
    test("APISIX doc example: body, status and headers when vars match; Content-Length follows", async () => {
      const sized = await startUpstream("sized", (req, res) => {
        const status = req.url!.includes("missing") ? 404 : 200;
        const payload = "x".repeat(1000);
        res.writeHead(status, { "content-length": payload.length, etag: '"v1"', "x-remove": "me" });
        res.end(payload);
      });
      try {
        await route(
          "rr",
          "/rr/*",
          {
            "response-rewrite": {
              body: '{"code":"ok","message":"new json body"}',
              status_code: 201,
              headers: {
                set: { "X-Server-id": 3, "X-Server-status": "on", "X-Server-balancer-addr": "$upstream_addr" },
              },
              vars: [["status", "==", 200]],
            },
          },
          sized.port,
        );
        const hit = await fetchBody(`${gw.proxyUrl}/rr/hit`);
        assert.equal(hit.status, 201);
        assert.deepEqual(hit.body, { code: "ok", message: "new json body" });
        assert.equal(hit.headers.get("x-server-id"), "3");
        assert.equal(hit.headers.get("x-server-status"), "on");
        assert.equal(hit.headers.get("x-server-balancer-addr"), `127.0.0.1:${sized.port}`);
        assert.equal(hit.headers.get("etag"), null, "the old validator no longer describes the body");
        const length = hit.headers.get("content-length");
        assert.ok(length === null || Number(length) === 39, `stale Content-Length ${length}`);

        const miss = await fetchBody(`${gw.proxyUrl}/rr/missing`);
        assert.equal(miss.status, 404, "vars did not match: untouched");
        assert.equal(miss.body, "x".repeat(1000));
        assert.equal(miss.headers.get("x-server-id"), null);
      } finally {
        await sized.close();
      }
    });

    test("filters rewrite a streamed upstream body, once or globally", async () => {
      const streaming = await startUpstream("stream", (_req, res) => {
        res.writeHead(200, { "content-type": "text/plain" });
        const parts = ["hello wo", "rld, hello", " world", "!"];
        let i = 0;
        const next = () => {
          if (i === parts.length) return void res.end();
          res.write(parts[i++]);
          setTimeout(next, 20);
        };
        next();
      });
      try {
        await route(
          "rr-f",
          "/rr/filters",
          {
            "response-rewrite": {
              filters: [
                { regex: "world", scope: "global", replace: "weir" },
                { regex: "(h)ello", replace: "$1i" },
              ],
            },
          },
          streaming.port,
        );
        const res = await fetchBody(`${gw.proxyUrl}/rr/filters`);
        assert.equal(res.status, 200);
        assert.equal(res.body, "hi weir, hello weir!", "matches across chunk boundaries");
      } finally {
        await streaming.close();
      }
    });

    test("filters see through gzip; headers add/remove; the old flat header form still works", async () => {
      const zipped = await startUpstream("gzip", (_req, res) => {
        const z = gzipSync("the secret is 42");
        res.writeHead(200, { "content-encoding": "gzip", "content-length": z.length, "x-remove": "me" });
        res.end(z);
      });
      try {
        await route(
          "rr-z",
          "/rr/gzip",
          {
            "response-rewrite": {
              filters: [{ regex: "\\d+", replace: "***" }],
              headers: { add: ["X-Added: $uri"], remove: ["X-Remove"] },
            },
          },
          zipped.port,
        );
        const res = await fetch(`${gw.proxyUrl}/rr/gzip`, { headers: { "accept-encoding": "identity" } });
        assert.equal(res.headers.get("content-encoding"), null);
        assert.equal(await res.text(), "the secret is ***");
        assert.equal(res.headers.get("x-added"), "/rr/gzip");
        assert.equal(res.headers.get("x-remove"), null);

        await route("rr-flat", "/rr/flat", { "response-rewrite": { headers: { "X-Flat": "yes" }, status_code: 202 } });
        const flat = await fetchBody(`${gw.proxyUrl}/rr/flat`);
        assert.equal(flat.status, 202);
        assert.equal(flat.headers.get("x-flat"), "yes");
        assert.equal(flat.body.node, "echo", "no body change: the upstream body passes");
      } finally {
        await zipped.close();
      }
    });

    test("body_base64 and rewriting a plugin's own reply", async () => {
      await route("rr-b64", "/rr/b64", {
        "response-rewrite": { body: Buffer.from("binary\u0000ok").toString("base64"), body_base64: true },
        "fault-injection": { abort: { http_status: 403, body: "denied" } },
      });
      const res = await fetch(`${gw.proxyUrl}/rr/b64`);
      assert.equal(res.status, 403);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), Buffer.from("binary\u0000ok"));
    });

    test("bad configs are refused", async () => {
      assert.match(
        await rejected({ "response-rewrite": { body: "a", filters: [{ regex: "a", replace: "b" }] } }),
        /property "filters" validation failed: cannot be configured together with "body"/,
      );
      assert.match(await rejected({ "response-rewrite": { body: "!!", body_base64: true } }), /invalid base64 content/);
      assert.match(
        await rejected({ "response-rewrite": { filters: [{ regex: "(", replace: "b" }] } }),
        /regex "\(" validation failed/,
      );
      assert.match(
        await rejected({ "response-rewrite": { vars: [["status", "=~", 200]] } }),
        /failed to validate the 'vars' expression/,
      );
      assert.match(await rejected({ "response-rewrite": { status_code: 599 } }), /status_code/);
    });
  });

  // ---- redirect -------------------------------------------------------------------------------------------

  describe("redirect", () => {
    const noFollow = { redirect: "manual" } as const;

    test("http_to_https: 301 for GET, 308 for POST, nothing when already https", async () => {
      await route("rd-https", "/rd/https", { redirect: { http_to_https: true } });
      const get = await new Promise<IncomingMessage>((resolve, reject) => {
        // fetch cannot set Host; the redirect must use the client's host, without its port.
        const req = request(`${gw.proxyUrl}/rd/https?a=1`, { headers: { Host: "example.com:9080" } }, resolve);
        req.on("error", reject);
        req.end();
      });
      get.resume();
      assert.equal(get.statusCode, 301);
      assert.equal(get.headers.location, "https://example.com/rd/https?a=1");
      const post = await fetch(`${gw.proxyUrl}/rd/https`, { ...noFollow, method: "POST", body: "x" });
      assert.equal(post.status, 308);
      const behindTls = await fetchBody(`${gw.proxyUrl}/rd/https`, { headers: { "X-Forwarded-Proto": "https" } });
      assert.equal(behindTls.status, 200);
    });

    test("uri templates with ret_code, append_query_string and encode_uri", async () => {
      await route("rd-uri", "/rd/uri/*", {
        redirect: { uri: "/new$uri/${arg_page}.html", ret_code: 301, append_query_string: true, encode_uri: true },
      });
      const res = await fetch(`${gw.proxyUrl}/rd/uri/a%20b?page=2`, noFollow);
      assert.equal(res.status, 301);
      assert.equal(res.headers.get("location"), "/new/rd/uri/a%20b/2.html?page=2");
    });

    test("regex_uri redirects on a match and proxies otherwise", async () => {
      await route("rd-re", "/iresty/*", { redirect: { regex_uri: ["^/iresty/(.*)/(.*)/(.*)", "/$1-$2-$3"] } });
      const hit = await fetch(`${gw.proxyUrl}/iresty/a/b/c`, noFollow);
      assert.equal(hit.status, 302);
      assert.equal(hit.headers.get("location"), "/a-b-c");
      const miss = await fetchBody(`${gw.proxyUrl}/iresty/a`);
      assert.equal(miss.status, 200);
      assert.equal(miss.body.url, "/iresty/a");
    });

    test("attack: CRLF from a variable cannot split the Location header", async () => {
      await route("rd-crlf", "/rd/crlf", { redirect: { uri: "/next/$arg_to" } });
      const res = await fetch(`${gw.proxyUrl}/rd/crlf?to=x%0d%0aSet-Cookie:%20owned=1`, noFollow);
      assert.equal(res.status, 302);
      assert.equal(res.headers.get("set-cookie"), null);
      assert.equal(res.headers.get("location"), "/next/x%0D%0ASet-Cookie: owned=1");
    });

    test("APISIX's exclusion rules", async () => {
      assert.match(
        await rejected({ redirect: { http_to_https: true, append_query_string: true } }),
        /only one of `http_to_https` and `append_query_string` can be configured./,
      );
      assert.match(await rejected({ redirect: { uri: "/a", regex_uri: ["a", "b"] } }), /only one schema/);
      assert.match(await rejected({ redirect: { ret_code: 302 } }), /matches none/);
      assert.match(await rejected({ redirect: { regex_uri: ["(", "/x"] } }), /invalid regex_uri \(\(, \/x\), err:/);
    });
  });
});

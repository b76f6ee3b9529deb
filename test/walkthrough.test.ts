import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { Agent, request as httpRequest } from "node:http";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { startUpstream, type TestUpstream } from "./helpers/upstream.js";

const run = promisify(execFile);

/** Runs curl as a user would and returns the status code and body (`-w` appends the status). */
async function curl(args: string[]): Promise<{ status: number; body: string }> {
  const { stdout } = await run("curl", ["-s", "-S", "-w", "\n%{http_code}", ...args], { timeout: 15_000 });
  const cut = stdout.lastIndexOf("\n");
  return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
}

/**
 * The APISIX article's walkthrough, as written, against Weir: an upstream of two model servers, a route
 * with limit-req, and curl calls. Only the ports differ (free ports so tests run beside a live gateway).
 */
describe("APISIX walkthrough with curl", () => {
  let gw: TestGateway;
  let model1: TestUpstream;
  let model2: TestUpstream;

  before(async () => {
    gw = await startTestGateway();
    model1 = await startUpstream("model-1");
    model2 = await startUpstream("model-2");
  });
  after(async () => {
    await gw.stop();
    await model1.close();
    await model2.close();
  });

  test("PUT the upstream with curl: 201 on first write, 200 on replace", async () => {
    const body = `{"nodes":[{"host":"127.0.0.1","port":${model1.port},"weight":1},{"host":"127.0.0.1","port":${model2.port},"weight":1}],"type":"roundrobin","retries":2,"timeout":{"connect":6,"send":6,"read":6}}`;
    const url = `${gw.adminUrl}/apisix/admin/upstreams/ai_models_upstream`;
    const first = await curl(["-X", "PUT", url, "-H", `X-API-KEY: ${gw.adminKey}`, "-d", body]);
    assert.equal(first.status, 201, first.body);
    const parsed = JSON.parse(first.body);
    assert.equal(parsed.key, "/apisix/upstreams/ai_models_upstream");
    assert.equal(parsed.value.type, "roundrobin");
    // any header casing, any Content-Type
    const again = await curl([
      "-X",
      "PUT",
      url,
      "-H",
      `x-api-key: ${gw.adminKey}`,
      "-H",
      "Content-Type: text/plain",
      "-d",
      body,
    ]);
    assert.equal(again.status, 200, again.body);
  });

  test("PUT the route with limit-req: 201", async () => {
    const body =
      '{"uri":"/ai/predict","methods":["POST"],"upstream_id":"ai_models_upstream","plugins":{"limit-req":{"rate":100,"burst":200,"key":"remote_addr","rejected_code":503}}}';
    const res = await curl([
      "-X",
      "PUT",
      `${gw.adminUrl}/apisix/admin/routes/ai_prediction_route`,
      "-H",
      `X-API-KEY: ${gw.adminKey}`,
      "-H",
      "Content-Type: application/json",
      "-d",
      body,
    ]);
    assert.equal(res.status, 201, res.body);
    await gw.settled();
  });

  test("curl POST /ai/predict alternates between the two model servers", async () => {
    const nodes: string[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await curl([
        "-X",
        "POST",
        `${gw.proxyUrl}/ai/predict`,
        "-H",
        "Content-Type: application/json",
        "-d",
        '{"input":"What is Flash-MoE?"}',
      ]);
      assert.equal(res.status, 200, res.body);
      const echoed = JSON.parse(res.body);
      assert.equal(echoed.body, '{"input":"What is Flash-MoE?"}');
      assert.equal(echoed.url, "/ai/predict");
      nodes.push(echoed.node);
    }
    assert.deepEqual(nodes.slice(0, 2).sort(), ["model-1", "model-2"]);
    for (let i = 2; i < nodes.length; i++) assert.equal(nodes[i], nodes[i - 2]);
  });

  test("GET is not routed (methods: POST)", async () => {
    const res = await curl([`${gw.proxyUrl}/ai/predict`]);
    assert.equal(res.status, 404);
  });

  test("limit-req delays past rate and rejects with 503 past rate+burst", async () => {
    // 300 requests at once: the bucket admits 1 + burst (200) at once, delaying the excess at `rate`/s;
    // the rest are rejected with rejected_code. A few more may pass as the bucket leaks meanwhile.
    const agent = new Agent({ keepAlive: true, maxSockets: 300 });
    const started = Date.now();
    const results = await Promise.all(
      Array.from(
        { length: 300 },
        () =>
          new Promise<{ status: number; ms: number }>((resolve, reject) => {
            const t0 = Date.now();
            const req = httpRequest(
              `${gw.proxyUrl}/ai/predict`,
              { method: "POST", agent, headers: { "content-type": "application/json" } },
              (res) => {
                res.resume();
                res.on("end", () => resolve({ status: res.statusCode!, ms: Date.now() - t0 }));
              },
            );
            req.on("error", reject);
            req.end('{"input":"What is Flash-MoE?"}');
          }),
      ),
    );
    agent.destroy();
    const elapsed = (Date.now() - started) / 1000;
    const ok = results.filter((r) => r.status === 200);
    const rejected = results.filter((r) => r.status === 503);
    assert.equal(ok.length + rejected.length, 300, "only 200s and 503s");
    // 201 admitted at once, plus what leaked at 100/s while the burst was being sent.
    assert.ok(ok.length >= 201, `admitted ${ok.length}`);
    assert.ok(ok.length <= 201 + Math.ceil(elapsed * 100) + 5, `admitted ${ok.length} in ${elapsed}s`);
    assert.ok(rejected.length > 0, "some requests were rejected");
    // Rejections are immediate; the admitted excess is delayed by excess/rate: the slowest waits ~2 s.
    const slowest = Math.max(...ok.map((r) => r.ms));
    assert.ok(slowest >= 1_500, `slowest admitted request waited ${slowest} ms`);
    assert.ok(Math.max(...rejected.map((r) => r.ms)) < 1_500, "rejections are not delayed");
  });

  test("proxy-rewrite sends /ai/predict to the models' /predict", async () => {
    const res = await curl([
      "-X",
      "PATCH",
      `${gw.adminUrl}/apisix/admin/routes/ai_prediction_route`,
      "-H",
      `X-API-KEY: ${gw.adminKey}`,
      "-d",
      '{"plugins":{"limit-req":null,"proxy-rewrite":{"uri":"/predict"}}}',
    ]);
    assert.equal(res.status, 200, res.body);
    await gw.settled();
    const call = await curl([
      "-X",
      "POST",
      `${gw.proxyUrl}/ai/predict`,
      "-H",
      "Content-Type: application/json",
      "-d",
      '{"input":"What is Flash-MoE?"}',
    ]);
    assert.equal(call.status, 200, call.body);
    assert.equal(JSON.parse(call.body).url, "/predict");
  });
});

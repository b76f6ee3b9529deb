// Time to first chunk of streamed POSTs: `node ttfc.mjs URL N BODY` prints a JSON array of N figures in ms.
// One keep-alive connection, requests one after another, so each figure is one request's own latency.
import { request } from "node:http";

const [url, count, body] = process.argv.slice(2);
const agent = new (await import("node:http")).Agent({ keepAlive: true, maxSockets: 1 });
const out = [];

function once() {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    let first;
    const req = request(url, { method: "POST", agent, headers: { "content-type": "application/json" } }, (res) => {
      res.on("data", () => {
        first ??= process.hrtime.bigint();
      });
      res.on("end", () => resolve(Number((first ?? process.hrtime.bigint()) - started) / 1e6));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

for (let i = 0; i < 20; i++) await once(); // warm-up: connections, JIT
for (let i = 0; i < Number(count); i++) out.push(await once());
agent.destroy();
process.stdout.write(JSON.stringify(out));

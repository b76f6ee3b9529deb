// Time to first chunk of streamed POSTs: `node ttfc.mjs N BODY URL...` prints {url: [ms, ...]} with N figures
// per URL. Requests alternate between the URLs one by one (one keep-alive connection each), so a noisy
// moment on the machine hits every target alike and paired differences stay meaningful.
import { Agent, request } from "node:http";

const [count, body, ...urls] = process.argv.slice(2);
const agents = urls.map(() => new Agent({ keepAlive: true, maxSockets: 1 }));
const out = Object.fromEntries(urls.map((u) => [u, []]));

function once(url, agent) {
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

for (let i = 0; i < 20; i++) for (let u = 0; u < urls.length; u++) await once(urls[u], agents[u]); // warm-up
for (let i = 0; i < Number(count); i++) {
  for (let k = 0; k < urls.length; k++) {
    const u = (i + k) % urls.length; // rotate who goes first
    out[urls[u]].push(await once(urls[u], agents[u]));
  }
}
for (const a of agents) a.destroy();
process.stdout.write(JSON.stringify(out));

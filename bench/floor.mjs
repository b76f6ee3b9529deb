// "The Node floor": the least a competent Node proxy does — node:http in, undici Pools out, keep-alive,
// streaming both ways. undici's stream() writes the upstream body straight into the client response, the
// fastest idiomatic way to proxy with undici. Weir's proxy path is measured against this in the same run.
import { createServer } from "node:http";
import { Pool } from "undici";

const [listenPort, ...upstreamPorts] = process.argv.slice(2).map(Number);
const pools = upstreamPorts.map((p) => new Pool(`http://127.0.0.1:${p}`));
const HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te", "trailer"]);
let next = 0;

createServer((req, res) => {
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k)) headers[k] = v;
  pools[next++ % pools.length]
    .stream(
      { path: req.url, method: req.method, headers, body: req.method === "GET" || req.method === "HEAD" ? null : req },
      ({ statusCode, headers: upstreamHeaders }) => {
        for (const h of HOP) delete upstreamHeaders[h];
        res.writeHead(statusCode, upstreamHeaders);
        return res;
      },
    )
    .catch(() => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
}).listen(listenPort, "127.0.0.1");

import { fork } from "node:child_process";
import { Pool } from "undici";

const child = fork("src/simulator/zz-srv.ts", {
  execArgv: ["--import", "tsx", ...(process.env.PROF ? ["--cpu-prof", "--cpu-prof-dir=/tmp/prof"] : [])],
});
await new Promise((r) => child.once("message", r));
const pool = new Pool("http://127.0.0.1:18765", { connections: 8 });
const stream = process.argv[2] === "stream";
const body = JSON.stringify({
  model: "gpt-4o-mini",
  messages: [
    { role: "system", content: "You are helpful." },
    { role: "user", content: "What is Flash-MoE? Explain briefly." },
  ],
  stream,
  ...(stream ? { stream_options: { include_usage: true } } : {}),
});
async function one() {
  const r = await pool.request({
    method: "POST",
    path: "/v1/chat/completions",
    headers: { "content-type": "application/json" },
    body,
  });
  await r.body.text();
}
for (let i = 0; i < 2000; i++) await one();
child.send("start");
const N = 20000;
let i = 0;
await Promise.all(
  Array.from({ length: 16 }, async () => {
    while (i++ < N) await one();
  }),
);
child.send("stop");
const res = await new Promise((r) => child.once("message", r));
console.log(stream ? "stream" : "non-stream", res);
child.kill("SIGINT");
await pool.close();

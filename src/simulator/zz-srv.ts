import { startLlmSimulator } from "./index.js";

process.on("SIGINT", () => process.exit(0));
const sim = await startLlmSimulator({ port: 18765 });
process.on("message", (m) => {
  if (m === "start") {
    (globalThis as any).t0 = process.cpuUsage();
    (globalThis as any).n0 = sim.requests.length;
  }
  if (m === "stop") {
    const u = process.cpuUsage((globalThis as any).t0);
    const n = 20000;
    process.send!({ us: (u.user + u.system) / n, n });
  }
});
process.send!("ready");

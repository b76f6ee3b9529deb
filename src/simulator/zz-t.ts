import { connect } from "node:net";
import { startLlmSimulator } from "./index.js";
const sim = await startLlmSimulator({});
const socket = connect(sim.port, "127.0.0.1");
await new Promise((r) => socket.once("connect", r));
const body = JSON.stringify({ model: "m", messages: [{role:"user",content:"x"}], stream: true });
socket.pause();
socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-sim-tokens: 60000\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
for (let i = 0; i < 10; i++) { await new Promise((r) => setTimeout(r, 100)); console.log(sim.inFlight, sim.requests.length); }
socket.destroy(); await sim.close();

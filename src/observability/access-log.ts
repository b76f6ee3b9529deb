import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { dirname } from "node:path";
import { performance } from "node:perf_hooks";
import type { RequestState } from "../vars/request-vars.js";
import type { VarSource } from "../vars/var-source.js";

/**
 * What the access log reads of a finished request: the lifecycle's facts the variable table reads too,
 * and the AI fields as variables. The proxy's RequestContext is one; the log never sees the proxy itself.
 */
export interface LoggedRequest
  extends VarSource,
    Pick<
      RequestState,
      | "req"
      | "startTime"
      | "remoteAddr"
      | "status"
      | "bytesSent"
      | "upstreamAddr"
      | "upstreamStatuses"
      | "upstreamHeaderTime"
      | "upstreamUri"
    > {
  /** Set for AI requests, whose line then carries what the call cost; only its presence is read. */
  readonly aiRequest: object | undefined;
}

export interface AccessLog {
  write(ctx: LoggedRequest): void;
  close(): Promise<void>;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/**
 * APISIX's default access log line (nginx `main` format plus upstream fields), written through a buffered
 * stream so logging never blocks the proxy path on disk I/O. `path` null turns it off.
 */
export function createAccessLog(path: string | null): AccessLog | undefined {
  if (path === null || path === "off") return undefined;
  let stream: WriteStream | NodeJS.WriteStream;
  if (path === "stdout") stream = process.stdout;
  else {
    mkdirSync(dirname(path), { recursive: true });
    stream = createWriteStream(path, { flags: "a", mode: 0o640 });
  }
  let cachedSecond = 0;
  let cachedTime = "";
  const timeLocal = (): string => {
    const now = Date.now();
    const second = Math.floor(now / 1000);
    if (second !== cachedSecond) {
      cachedSecond = second;
      cachedTime = formatTime(new Date(now));
    }
    return cachedTime;
  };
  return {
    write(ctx) {
      const req = ctx.req;
      const seconds = ((performance.now() - ctx.startTime) / 1000).toFixed(3);
      const upstreamTime = ctx.upstreamHeaderTime > 0 ? (ctx.upstreamHeaderTime / 1000).toFixed(3) : "-";
      const line =
        `${ctx.remoteAddr} - - [${timeLocal()}] ${req.headers.host ?? "-"} "${req.method} ${req.url} HTTP/${req.httpVersion}" ` +
        `${ctx.status} ${ctx.bytesSent} ${seconds} "${req.headers.referer ?? "-"}" "${req.headers["user-agent"] ?? "-"}" ` +
        `${ctx.upstreamAddr ?? "-"} ${ctx.upstreamStatuses?.join(", ") ?? "-"} ${upstreamTime} "${ctx.upstreamUri}"`;
      stream.write(ctx.aiRequest === undefined ? `${line}\n` : `${line}${aiFields(ctx)}\n`);
    },
    close() {
      if (stream === process.stdout) return Promise.resolve();
      return new Promise((resolve) => (stream as WriteStream).end(() => resolve()));
    },
  };
}

/** AI requests add what they cost, as key=value pairs so log tools need no positional format. */
const AI_FIELDS = [
  "ai_instance",
  "llm_model",
  "llm_prompt_tokens",
  "llm_completion_tokens",
  "llm_total_tokens",
  "llm_time_to_first_token",
  "llm_usage_estimated",
  // A stream cut after its 200 went out (upstream_broken, upstream_timeout, max_stream_duration,
  // max_response_bytes): the status says 200, this says the answer is not whole.
  "llm_stream_cut",
] as const;

function aiFields(ctx: LoggedRequest): string {
  let out = "";
  for (const name of AI_FIELDS) out += ` ${name}=${ctx.var(name) ?? "-"}`;
  return out;
}

function formatTime(d: Date): string {
  const pad = (n: number) => (n < 10 ? `0${n}` : String(n));
  const offset = -d.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  const abs = Math.abs(offset);
  return `${pad(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`;
}

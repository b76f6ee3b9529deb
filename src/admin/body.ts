import type { IncomingMessage } from "node:http";
import { fail } from "./reply.js";

/** APISIX's MAX_REQ_BODY for the Admin API. */
export const MAX_BODY = 1.5 * 1024 * 1024;

const tooLarge = (size: number) =>
  fail(400, `invalid request body: request size ${size} is greater than the maximum size ${MAX_BODY} allowed`);

/**
 * Reads the request body and parses it as JSON whatever Content-Type says (curl -d sends form encoding and
 * APISIX ignores it too). Resolves to undefined for an empty body; rejects with APISIX's 400s.
 */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > MAX_BODY) {
    req.resume();
    tooLarge(declared);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) {
      req.resume();
      tooLarge(size);
    }
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  const text = Buffer.concat(chunks).toString("utf8");
  try {
    return JSON.parse(text);
  } catch (err) {
    return fail(400, `invalid request body: ${(err as Error).message}`, { req_body: text });
  }
}

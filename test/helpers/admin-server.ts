import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Type } from "@sinclair/typebox";
import { createAdminHandler } from "../../src/admin/server.js";
import type { AdminKey } from "../../src/config/types.js";
import type { Plugin } from "../../src/plugin-api/plugin.js";
import { MemoryStore } from "../../src/store/memory.js";

/**
 * A real http.Server on 127.0.0.1 running the Admin API over a MemoryStore, with small test-only plugins
 * (the real ones are other modules' business). Used by the Admin API tests; not a test file itself.
 */
export const ADMIN_KEY = "edd1c9f034335f136f87ad84b625c8f1";
export const VIEWER_KEY = "4054f7cf07e344346cd3f287985e76a2";

const limitReq: Plugin = {
  name: "limit-req",
  priority: 1001,
  version: "0.1",
  schema: Type.Object({
    rate: Type.Number({ exclusiveMinimum: 0 }),
    burst: Type.Number({ minimum: 0 }),
    key: Type.String(),
    key_type: Type.Optional(Type.Unsafe<string>({ type: "string", enum: ["var", "var_combination"], default: "var" })),
    rejected_code: Type.Optional(Type.Integer({ minimum: 200, maximum: 599, default: 503 })),
  }),
  check(conf: { rate: number; burst: number }) {
    return conf.burst > conf.rate * 1000 ? 'property "burst" must be at most 1000 × rate' : undefined;
  },
};

const testAuth: Plugin = {
  name: "test-auth",
  priority: 2500,
  type: "auth",
  schema: Type.Object({ header: Type.Optional(Type.String({ default: "x-user" })) }, { additionalProperties: false }),
  consumerSchema: Type.Object({ user: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
};

const logger: Plugin = {
  name: "test-logger",
  priority: 400,
  schema: Type.Object({ path: Type.Optional(Type.String()) }, { additionalProperties: false }),
  metadataSchema: Type.Object(
    { log_format: Type.Record(Type.String(), Type.String()), batch: Type.Optional(Type.Integer({ default: 10 })) },
    { additionalProperties: false },
  ),
};

/** Named like the real one so the upstream delete check sees its weighted_upstreams references. */
const trafficSplit: Plugin = {
  name: "traffic-split",
  priority: 966,
  schema: Type.Object({ rules: Type.Optional(Type.Array(Type.Unknown())) }),
};

/** In the registry but not enabled: APISIX calls it an unknown plugin. */
const disabled: Plugin = { name: "not-enabled", priority: 1, schema: Type.Object({}) };

export const TEST_PLUGINS: ReadonlyMap<string, Plugin> = new Map(
  [limitReq, testAuth, logger, trafficSplit, disabled].map((p) => [p.name, p]),
);
export const ENABLED = ["limit-req", "test-auth", "test-logger", "traffic-split"];

/** A tiny vars checker standing in for the router's. */
export function testValidateVars(expr: unknown): string | undefined {
  if (!Array.isArray(expr)) return "expression must be an array";
  for (const rule of expr) {
    if (!Array.isArray(rule) || rule.length < 3) return "rule too short";
    if (!["==", "~=", ">", "<", "~~", "in"].includes(String(rule[1]))) return `invalid operator '${String(rule[1])}'`;
  }
  return undefined;
}

export interface TestAdmin {
  url: string;
  store: MemoryStore;
  /** Calls the Admin API with the admin key; `body` strings are sent as they are. */
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<TestAnswer>;
  close(): Promise<void>;
}

export interface TestAnswer {
  status: number;
  headers: Headers;
  /** Parsed JSON, or the raw text when the body is not JSON (undefined when empty). */
  body: any;
}

export async function startAdmin(
  options: { allow?: string[]; keys?: AdminKey[]; store?: MemoryStore } = {},
): Promise<TestAdmin> {
  const store = options.store ?? new MemoryStore();
  await store.open();
  const handler = createAdminHandler({
    store,
    keys: options.keys ?? [
      { name: "admin", key: ADMIN_KEY, role: "admin" },
      { name: "viewer", key: VIEWER_KEY, role: "viewer" },
    ],
    allow: options.allow ?? [],
    plugins: TEST_PLUGINS,
    enabledPlugins: ENABLED,
    validateVars: testValidateVars,
  });
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    store,
    async call(method, path, body, headers = { "X-API-KEY": ADMIN_KEY }) {
      const res = await fetch(`${url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown;
      try {
        parsed = text === "" ? undefined : JSON.parse(text);
      } catch {
        parsed = text;
      }
      return { status: res.status, headers: res.headers, body: parsed };
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

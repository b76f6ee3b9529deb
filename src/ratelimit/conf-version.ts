import { createHash } from "node:crypto";

/**
 * A plugin config's identity for counter keys (APISIX's plugin-level conf_version): counters live in
 * process-wide tables that outlive plugin instances, so an edit elsewhere on the route keeps the count
 * while an edit of this plugin's own config counts afresh. Key order does not matter; `_meta` does not count.
 */
export function confVersion(conf: object): string {
  const { _meta, ...rest } = conf as { _meta?: unknown };
  return createHash("sha256").update(stableJson(rest)).digest("base64url").slice(0, 12);
}

/**
 * The key prefix of the budgets one plugin instance owns: where it is configured (kind and id, the id
 * length-prefixed so no id can spell another) and which config of it (confVersion). Ends with ":".
 */
export function ownerKey(scope: { kind: string; id: string }, conf: object): string {
  return `${scope.kind}:${scope.id.length}:${scope.id}:${confVersion(conf)}:`;
}

function stableJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson(obj[k])}`).join(",")}}`;
}

/** A tool the request offers, in provider-neutral form. */
export interface OfferedTool {
  name: string;
  /** JSON Schema of the tool's arguments. */
  schema: unknown;
}

/** What the request's tool_choice allows: pick freely, must call some tool, must call this one, or none. */
export type ToolDemand = { kind: "auto" } | { kind: "any" } | { kind: "named"; name: string } | { kind: "none" };

const ASKS_FOR_A_TOOL = /\b(use|call) (a|the|your|some) (tool|function)s?\b/i;

/**
 * The tool the simulated model calls, if any. It calls one when tool_choice demands it, or when the last user
 * message names a tool or asks to "use a tool"; otherwise it answers in text, which is also how an agent loop
 * ends once the last message is a tool result.
 */
export function chooseTool(
  tools: readonly OfferedTool[],
  demand: ToolDemand,
  lastUserText: string | undefined,
): OfferedTool | undefined {
  if (tools.length === 0 || demand.kind === "none") return undefined;
  if (demand.kind === "named") return tools.find((t) => t.name === demand.name);
  if (demand.kind === "any") return mentionedTool(tools, lastUserText) ?? tools[0];
  if (lastUserText === undefined) return undefined;
  return mentionedTool(tools, lastUserText) ?? (ASKS_FOR_A_TOOL.test(lastUserText) ? tools[0] : undefined);
}

function mentionedTool(tools: readonly OfferedTool[], text: string | undefined): OfferedTool | undefined {
  if (text === undefined) return undefined;
  const lower = text.toLowerCase();
  return tools.find((t) => lower.includes(t.name.toLowerCase()));
}

/** Deterministic arguments that satisfy the common parts of a JSON Schema (types, enums, consts, nesting). */
export function sampleArguments(schema: unknown): Record<string, unknown> {
  const value = sampleValue(schema, "value", 0);
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function sampleValue(schema: unknown, name: string, depth: number): unknown {
  if (typeof schema !== "object" || schema === null || depth > 8) return null;
  const s = schema as Record<string, unknown>;
  if ("const" in s) return s.const;
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[0];
  if ("default" in s) return s.default;
  for (const key of ["anyOf", "oneOf"]) {
    const options = s[key];
    if (Array.isArray(options) && options.length > 0) return sampleValue(options[0], name, depth + 1);
  }
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case "string":
      return `sample ${name}`;
    case "integer":
    case "number":
      return typeof s.minimum === "number" ? s.minimum : 1;
    case "boolean":
      return true;
    case "array":
      return [sampleValue(s.items, name, depth + 1)];
    case "null":
      return null;
    default: {
      const props = typeof s.properties === "object" && s.properties !== null ? s.properties : {};
      const out: Record<string, unknown> = {};
      for (const [key, sub] of Object.entries(props)) out[key] = sampleValue(sub, key, depth + 1);
      return out;
    }
  }
}

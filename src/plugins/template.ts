import type { PluginContext } from "./context.js";

/**
 * APISIX's resolve_var: `$name` and `${name}` in a config string are replaced by request variables (empty
 * when unset); `\$` is a literal dollar. Parsed once into parts so a request only concatenates.
 */
export type Template = (ctx: Pick<PluginContext, "var">) => string;

const VAR = /\\\$|\$\{([\w.\-]+)\}|\$(\w+)/g;

export function compileTemplate(source: string): Template {
  if (!source.includes("$")) return () => source;
  const parts: (string | { name: string })[] = [];
  let last = 0;
  for (const m of source.matchAll(VAR)) {
    if (m.index > last) parts.push(source.slice(last, m.index));
    if (m[0] === "\\$") parts.push("$");
    else parts.push({ name: (m[1] ?? m[2])! });
    last = m.index + m[0].length;
  }
  if (last < source.length) parts.push(source.slice(last));
  return (ctx) => {
    let out = "";
    for (const p of parts) out += typeof p === "string" ? p : (ctx.var(p.name) ?? "");
    return out;
  };
}

/** Number of variables a template references (APISIX falls back when none of them resolved). */
export function templateVariables(source: string): string[] {
  const names: string[] = [];
  for (const m of source.matchAll(VAR)) if (m[0] !== "\\$") names.push((m[1] ?? m[2])!);
  return names;
}

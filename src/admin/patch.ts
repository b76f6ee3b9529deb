/**
 * APISIX's PATCH: objects merge recursively, arrays and scalars replace, JSON null deletes the key.
 * Returns a new object; the stored one is never mutated.
 */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const base =
    target !== null && typeof target === "object" && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [key, value] of Object.entries(patch as Record<string, unknown>)) {
    if (value === null) delete base[key];
    else base[key] = mergePatch(base[key], value);
  }
  return base;
}

/** PATCH /routes/1/plugins/limit-req: replaces the value at a sub-path (creating objects on the way). */
export function setAtPath(target: Record<string, unknown>, path: string[], value: unknown): Record<string, unknown> {
  const root = structuredClone(target);
  let cur: Record<string, unknown> = root;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i]!;
    const next = cur[key];
    if (next === null || typeof next !== "object") cur[key] = {};
    cur = cur[key] as Record<string, unknown>;
  }
  const last = path[path.length - 1]!;
  if (value === null) delete cur[last];
  else cur[last] = value;
  return root;
}

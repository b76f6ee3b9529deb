import { fail } from "./reply.js";

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * APISIX's PATCH merge (core.table.merge): objects merge recursively, arrays and scalars replace, JSON null
 * deletes the key. Unlike APISIX, nulls inside a value that replaces a non-object are dropped too (JSON Merge
 * Patch, RFC 7386), so a stored config never holds a null. Returns a new object; inputs are not mutated.
 */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const base: Obj = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete base[key];
    else base[key] = mergePatch(base[key], value);
  }
  return base;
}

/**
 * PATCH /<type>/<id>/<sub/path>: replaces the value at that path (core.table.patch), creating missing
 * objects on the way; a number indexes into an array (0-based). JSON null deletes the value. Throws APISIX's
 * `invalid sub-path` 400 when the path runs through a scalar.
 */
export function setAtPath(target: Obj, path: readonly string[], value: unknown): Obj {
  const root = structuredClone(target);
  let cur: Obj | unknown[] = root;
  for (let i = 0; i < path.length - 1; i++) {
    const name = path[i]!;
    let next = getChild(cur, name, path, i);
    if (next === undefined) {
      next = {};
      setChild(cur, name, next, path, i);
    }
    if (next === null || typeof next !== "object") fail(400, `invalid sub-path: /${path.slice(0, i + 1).join("/")}`);
    cur = next as Obj | unknown[];
  }
  setChild(cur, path[path.length - 1]!, value, path, path.length - 1);
  return root;
}

function index(container: unknown[], name: string, path: readonly string[], i: number): number {
  if (!/^\d+$/.test(name)) fail(400, `invalid sub-path: /${path.slice(0, i + 1).join("/")}`);
  const n = Number(name);
  if (n > container.length) fail(400, `invalid sub-path: /${path.slice(0, i + 1).join("/")}`);
  return n;
}

function getChild(container: Obj | unknown[], name: string, path: readonly string[], i: number): unknown {
  return Array.isArray(container) ? container[index(container, name, path, i)] : container[name];
}

function setChild(container: Obj | unknown[], name: string, value: unknown, path: readonly string[], i: number): void {
  if (Array.isArray(container)) {
    const n = index(container, name, path, i);
    if (value === null) container.splice(n, 1);
    else container[n] = value;
  } else if (value === null) delete container[name];
  else container[name] = value;
}

import type { StoreEntry } from "../store/types.js";
import { envelope, fail } from "./reply.js";

type Conf = { name?: unknown; labels?: Record<string, unknown>; uri?: unknown; uris?: unknown[] } & Record<
  string,
  unknown
>;

/** A user-given regular expression, as APISIX's re_find uses `name` and `uri`; an invalid one matches nothing. */
function regex(source: string): RegExp | undefined {
  try {
    return new RegExp(source);
  } catch {
    return undefined;
  }
}

/**
 * APISIX 3.x list filters (v3_adapter.filter): `name` and `uri` are regular expressions searched in the
 * resource's name / uri / uris, `label` names a label key the resource must carry (empty = no restriction),
 * and `filter=k%3Dv&...` compares the resource's own fields, for the fields the resource type allows.
 */
function matcher(query: URLSearchParams, filterFields: readonly string[]): (v: Conf) => boolean {
  const tests: ((v: Conf) => boolean)[] = [];
  const name = query.get("name");
  if (name !== null) {
    const re = regex(name);
    tests.push((v) => re !== undefined && typeof v.name === "string" && re.test(v.name));
  }
  const label = query.get("label");
  if (label !== null && label !== "") {
    tests.push((v) => v.labels !== undefined && Object.hasOwn(v.labels, label));
  }
  const uri = query.get("uri");
  if (uri !== null) {
    const re = regex(uri);
    tests.push(
      (v) =>
        re !== undefined &&
        ((typeof v.uri === "string" && re.test(v.uri)) ||
          (Array.isArray(v.uris) && v.uris.some((u) => typeof u === "string" && re.test(u)))),
    );
  }
  const filter = query.get("filter");
  if (filter !== null) {
    const wanted = new Map<string, string>();
    for (const [k, val] of new URLSearchParams(filter)) if (filterFields.includes(k)) wanted.set(k, val);
    for (const [k, val] of wanted) tests.push((v) => v[k] !== undefined && String(v[k]) === val);
  }
  return (v) => tests.every((t) => t(v));
}

/**
 * `{total, list}` as APISIX 3.x answers a list: filtered, `total` counted after filtering, then paged when
 * both `page` and `page_size` are given (sorted by createdIndex, as APISIX sorts only when paging).
 */
export function listAnswer(
  entries: readonly StoreEntry[],
  query: URLSearchParams,
  filterFields: readonly string[],
  toEnvelope: (entry: StoreEntry) => unknown = envelope,
) {
  const matches = matcher(query, filterFields);
  let items = entries.filter((e) => matches(e.value as Conf));
  const total = items.length;
  const page = numberArg(query.get("page"));
  const size = numberArg(query.get("page_size"));
  if (Number.isFinite(page) && Number.isFinite(size)) {
    if (size < 10 || size > 500) fail(400, "page_size must be between 10 and 500");
    const from = (Math.max(1, Math.trunc(page)) - 1) * Math.trunc(size);
    items = [...items].sort((a, b) => a.createRevision - b.createRevision).slice(from, from + Math.trunc(size));
  }
  return { total, list: items.map(toEnvelope) };
}

/** Lua's tonumber: an absent or blank argument is no number. */
function numberArg(s: string | null): number {
  return s === null || s.trim() === "" ? Number.NaN : Number(s);
}

import { compileIpMatcher } from "./ip.js";
import type { MatchInput, RouteMatch, Router, RouteSpec, VarSource } from "./types.js";
import { compileVars, readsPostArgs, type VarsPredicate } from "./vars.js";

/**
 * APISIX's `radixtree_host_uri` router, compiled once per config change:
 * - routes that declare hosts are tried before routes that do not; an exact host before wildcards, longer
 *   wildcards before shorter ones;
 * - within a host, an exact path beats patterns; patterns (`/a/*` prefixes, `:param`/`*name` segments)
 *   are tried longest static prefix first; if an exact route's other conditions fail, patterns still get
 *   their turn;
 * - among routes on the same path, higher `priority` first, then the order routes were created.
 * Exact paths are one Map lookup; patterns are bucketed by their first path segment so a request only
 * scans the patterns that could match it.
 */
interface Candidate<T> {
  id: string;
  payload: T;
  priority: number;
  order: number;
  methods: Set<string> | undefined;
  remote: ((ip: string) => boolean) | undefined;
  vars: VarsPredicate | undefined;
}

interface Pattern<T> {
  candidate: Candidate<T>;
  /** Literal text before the first wildcard or parameter. */
  staticPrefix: string;
  /** undefined for a plain `prefix*` (startsWith is enough). */
  regex: RegExp | undefined;
  paramNames: string[];
}

class PathTable<T> {
  readonly exact = new Map<string, Candidate<T>[]>();
  /** Patterns whose static prefix contains a complete first segment, keyed by that segment. */
  readonly buckets = new Map<string, Pattern<T>[]>();
  /** Patterns whose static prefix ends inside (or before) the first segment. */
  readonly general: Pattern<T>[] = [];

  add(uri: string, candidate: Candidate<T>): void {
    const star = uri.indexOf("*");
    const colon = uri.indexOf("/:");
    if (star === -1 && colon === -1) {
      let list = this.exact.get(uri);
      if (list === undefined) this.exact.set(uri, (list = []));
      list.push(candidate);
      return;
    }
    const cut = Math.min(
      star === -1 ? Number.POSITIVE_INFINITY : star,
      colon === -1 ? Number.POSITIVE_INFINITY : colon + 1,
    );
    const staticPrefix = uri.slice(0, cut);
    const pattern = compilePattern(uri, staticPrefix, candidate);
    const seg = firstCompleteSegment(staticPrefix);
    if (seg === undefined) this.general.push(pattern);
    else {
      let list = this.buckets.get(seg);
      if (list === undefined) this.buckets.set(seg, (list = []));
      list.push(pattern);
    }
  }

  seal(): void {
    for (const list of this.exact.values()) list.sort(byPriority);
    const byPrefix = (a: Pattern<T>, b: Pattern<T>) =>
      b.staticPrefix.length - a.staticPrefix.length || byPriority(a.candidate, b.candidate);
    for (const list of this.buckets.values()) list.sort(byPrefix);
    this.general.sort(byPrefix);
  }

  match(input: MatchInput, vars: VarSource): RouteMatch<T> | undefined {
    const path = input.path;
    const exact = this.exact.get(path);
    if (exact !== undefined) {
      for (const c of exact)
        if (conditionsHold(c, input, vars)) return { id: c.id, payload: c.payload, params: undefined };
    }
    if (this.buckets.size > 0) {
      const end = path.indexOf("/", 1);
      if (end !== -1) {
        const list = this.buckets.get(path.slice(1, end));
        if (list !== undefined) {
          const m = matchPatterns(list, input, vars);
          if (m !== undefined) return m;
        }
      }
    }
    return this.general.length > 0 ? matchPatterns(this.general, input, vars) : undefined;
  }
}

function matchPatterns<T>(list: Pattern<T>[], input: MatchInput, vars: VarSource): RouteMatch<T> | undefined {
  const path = input.path;
  for (const p of list) {
    if (!path.startsWith(p.staticPrefix)) continue;
    let params: Record<string, string> | undefined;
    if (p.regex !== undefined) {
      const m = p.regex.exec(path);
      if (m === null) continue;
      if (p.paramNames.length > 0) {
        params = {};
        for (let i = 0; i < p.paramNames.length; i++) params[p.paramNames[i]!] = m[i + 1] ?? "";
      }
    }
    if (conditionsHold(p.candidate, input, vars)) return { id: p.candidate.id, payload: p.candidate.payload, params };
  }
  return undefined;
}

function conditionsHold<T>(c: Candidate<T>, input: MatchInput, vars: VarSource): boolean {
  if (c.methods !== undefined && !c.methods.has(input.method)) return false;
  if (c.remote !== undefined && !c.remote(input.remoteAddr)) return false;
  if (c.vars !== undefined && !c.vars(vars)) return false;
  return true;
}

function byPriority<T>(a: Candidate<T>, b: Candidate<T>): number {
  return b.priority - a.priority || a.order - b.order;
}

/** `/ai/pre*` → "ai"; `/ai*` or `/*` → undefined (the first segment is not complete). */
function firstCompleteSegment(prefix: string): string | undefined {
  const end = prefix.indexOf("/", 1);
  return end === -1 ? undefined : prefix.slice(1, end);
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function compilePattern<T>(uri: string, staticPrefix: string, candidate: Candidate<T>): Pattern<T> {
  // A plain trailing `*` with no parameters is a prefix match: startsWith suffices.
  if (uri.indexOf("*") === uri.length - 1 && !uri.includes("/:")) {
    return { candidate, staticPrefix, regex: undefined, paramNames: [] };
  }
  const paramNames: string[] = [];
  let source = "^";
  const parts = uri.split("/");
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (i > 0) source += "/";
    if (part.startsWith(":") && part.length > 1) {
      paramNames.push(part.slice(1));
      source += "([^/]+)";
    } else if (part.startsWith("*")) {
      if (part.length > 1) paramNames.push(part.slice(1));
      source += part.length > 1 ? "(.*)" : ".*";
      if (part.length === 1) {
        // anonymous wildcard: rest of the path, no capture
      }
    } else if (part.includes("*")) {
      const at = part.indexOf("*");
      source += `${escapeRegex(part.slice(0, at))}.*`;
    } else source += escapeRegex(part);
  }
  source += "$";
  return { candidate, staticPrefix, regex: new RegExp(source), paramNames };
}

interface WildcardHost<T> {
  /** ".example.com" for "*.example.com". */
  suffix: string;
  table: PathTable<T>;
}

class CompiledRouter<T> implements Router<T> {
  readonly needsBody: boolean;
  private readonly exactHosts: Map<string, PathTable<T>>;
  private readonly wildcardHosts: WildcardHost<T>[];
  private readonly anyHost: PathTable<T>;

  constructor(specs: readonly RouteSpec<T>[]) {
    this.exactHosts = new Map();
    const wildcards = new Map<string, PathTable<T>>();
    this.anyHost = new PathTable();
    let needsBody = false;
    specs.forEach((spec, order) => {
      const candidate: Candidate<T> = {
        id: spec.id,
        payload: spec.payload,
        priority: spec.priority,
        order,
        methods: spec.methods && spec.methods.length > 0 ? new Set(spec.methods) : undefined,
        remote: spec.remoteAddrs && spec.remoteAddrs.length > 0 ? compileIpMatcher(spec.remoteAddrs) : undefined,
        vars: spec.vars && spec.vars.length > 0 ? compileVars(spec.vars) : undefined,
      };
      if (spec.vars !== undefined && readsPostArgs(spec.vars)) needsBody = true;
      const tables: PathTable<T>[] = [];
      if (spec.hosts === undefined || spec.hosts.length === 0) tables.push(this.anyHost);
      else {
        for (const raw of spec.hosts) {
          const host = raw.toLowerCase();
          if (host.startsWith("*")) {
            const suffix = host.slice(1);
            let t = wildcards.get(suffix);
            if (t === undefined) wildcards.set(suffix, (t = new PathTable()));
            tables.push(t);
          } else {
            let t = this.exactHosts.get(host);
            if (t === undefined) this.exactHosts.set(host, (t = new PathTable()));
            tables.push(t);
          }
        }
      }
      for (const table of tables) for (const uri of spec.uris) table.add(uri, candidate);
    });
    this.wildcardHosts = [...wildcards].map(([suffix, table]) => ({ suffix, table }));
    this.wildcardHosts.sort((a, b) => b.suffix.length - a.suffix.length);
    for (const t of this.exactHosts.values()) t.seal();
    for (const w of this.wildcardHosts) w.table.seal();
    this.anyHost.seal();
    this.needsBody = needsBody;
  }

  match(input: MatchInput, vars: VarSource): RouteMatch<T> | undefined {
    if (this.exactHosts.size > 0 || this.wildcardHosts.length > 0) {
      const host = input.host;
      const exact = this.exactHosts.get(host);
      if (exact !== undefined) {
        const m = exact.match(input, vars);
        if (m !== undefined) return m;
      }
      for (const w of this.wildcardHosts) {
        if (host.length > w.suffix.length && host.endsWith(w.suffix)) {
          const m = w.table.match(input, vars);
          if (m !== undefined) return m;
        }
      }
    }
    return this.anyHost.match(input, vars);
  }
}

export function compileRouter<T>(specs: readonly RouteSpec<T>[]): Router<T> {
  return new CompiledRouter(specs);
}

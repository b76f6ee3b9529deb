import type { VarSource } from "../vars/var-source.js";

export type { VarSource };

/** One route as the router sees it: match conditions plus an opaque payload handed back on match. */
export interface RouteSpec<T> {
  id: string;
  payload: T;
  /** From route.uri / route.uris. `/a/*` is a prefix, `:name` and `*name` segments capture. */
  uris: string[];
  /** Lower-case hosts; a leading `*.` is a wildcard. Absent = any host. */
  hosts?: string[];
  methods?: string[];
  /** IPs or CIDRs, v4 and v6. */
  remoteAddrs?: string[];
  /** lua-resty-expr expression array. */
  vars?: unknown[];
  priority: number;
}

export interface MatchInput {
  method: string;
  path: string;
  /** Lower-case, without port. */
  host: string;
  remoteAddr: string;
}

export interface RouteMatch<T> {
  id: string;
  payload: T;
  params: Record<string, string> | undefined;
}

export interface Router<T> {
  match(input: MatchInput, vars: VarSource): RouteMatch<T> | undefined;
  /** True when some route reads `post_arg.*`: only then must a JSON body be read before matching. */
  readonly needsBody: boolean;
}

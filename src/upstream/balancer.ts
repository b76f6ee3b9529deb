import type { VarSource } from "../vars/var-source.js";

/**
 * "Who to talk to": a balancer picks a node for one attempt of one request. Transport ("how to talk") is
 * the connection pool's job; health is the health checker's. Balancers are built once per config change.
 */
export interface UpstreamNode {
  host: string;
  port: number;
  weight: number;
  /** Higher priority tiers are used first; lower tiers only when every node above was tried (backup nodes). */
  priority: number;
  /** `host:port`, unique within an upstream; used for the tried-set and pool lookup. */
  readonly key: string;
  metadata?: Record<string, unknown>;
}

export interface Balancer<N extends UpstreamNode = UpstreamNode> {
  /**
   * The node for the next attempt, skipping nodes in `tried`; undefined when no untried node remains.
   * `request` is read only for chash's key (its `hash_on` variable, header or cookie). Must not allocate on
   * the common first attempt (tried undefined).
   */
  pick(request: VarSource, tried: ReadonlySet<string> | undefined): N | undefined;
  /** An attempt to `node` started (least_conn, ewma bookkeeping). */
  onAttemptStart?(node: N): void;
  /** An attempt to `node` finished after `latencyMs`; `failed` for connect errors/timeouts. */
  onAttemptEnd?(node: N, latencyMs: number, failed: boolean): void;
  /**
   * The attempt's answer produced its first token, `latencyMs` after the attempt started (LLM calls only:
   * a stream's first content event, or a whole non-streamed answer). ewma over AI instances learns from it.
   */
  onFirstToken?(node: N, latencyMs: number): void;
}

export interface BalancerOptions {
  /** chash: the key (a variable, header or cookie name) and where it is read. */
  key?: string;
  hashOn?: string;
  /**
   * ewma: which latency it learns. "response" (APISIX's: the whole upstream response time) for upstreams;
   * "first-token" for AI instances, where an answer's length says nothing about the replica but the time
   * to its first token (queueing plus prefill) does.
   */
  latency?: "response" | "first-token";
  /** chash: consistent hashing with bounded loads, c ≥ 1 (see chash.ts); unset: APISIX's plain chash. */
  boundedLoad?: number;
}

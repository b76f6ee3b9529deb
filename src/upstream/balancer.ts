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
}

export type BalancerFactory = (nodes: readonly UpstreamNode[], options: { key?: string; hashOn?: string }) => Balancer;

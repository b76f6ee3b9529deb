import type { VarSource } from "../vars/var-source.js";
import type { Balancer, UpstreamNode } from "./balancer.js";
import { priorityTiers } from "./tiers.js";

interface Slot {
  readonly node: UpstreamNode;
  readonly weight: number;
  current: number;
}

/**
 * nginx's smooth weighted round robin (ngx_http_upstream_get_peer): each pick adds every eligible node's
 * weight to its `current`, takes the largest and subtracts the eligible total from it. Over every cycle of
 * sum(weights) first attempts each node gets exactly its weight's share, interleaved rather than in runs
 * (3:2:1 → a b a c b a). Weight 0 never receives traffic.
 *
 * Node `priority` splits nodes into tiers, highest first; a lower tier is used only when every node above
 * it was tried (backup nodes), as APISIX's priority balancer does. A retry skips tried nodes inside the
 * pick, as nginx does, so `current` still sums to zero and the shares stay exact in the long run.
 */
class RoundRobinBalancer implements Balancer {
  private readonly tiers: readonly Slot[][];
  /** The only node with weight, if there is exactly one: no arithmetic needed. */
  private readonly single: UpstreamNode | undefined;

  constructor(nodes: readonly UpstreamNode[]) {
    this.tiers = priorityTiers(nodes, (node) => ({ node, weight: node.weight, current: 0 }));
    const count = this.tiers.reduce((n, tier) => n + tier.length, 0);
    this.single = count === 1 ? this.tiers[0]![0]!.node : undefined;
  }

  pick(_request: VarSource, tried: ReadonlySet<string> | undefined): UpstreamNode | undefined {
    const single = this.single;
    if (single !== undefined) return tried?.has(single.key) ? undefined : single;
    const tiers = this.tiers;
    for (let t = 0; t < tiers.length; t++) {
      const tier = tiers[t]!;
      let best: Slot | undefined;
      let total = 0;
      for (let i = 0; i < tier.length; i++) {
        const slot = tier[i]!;
        if (tried?.has(slot.node.key)) continue;
        slot.current += slot.weight;
        total += slot.weight;
        if (best === undefined || slot.current > best.current) best = slot;
      }
      if (best !== undefined) {
        best.current -= total;
        return best.node;
      }
    }
    return undefined;
  }
}

export function createRoundRobinBalancer(nodes: readonly UpstreamNode[]): Balancer {
  return new RoundRobinBalancer(nodes);
}

import type { Balancer, BalancerRequest, UpstreamNode } from "./balancer.js";

interface Slot {
  node: UpstreamNode;
  weight: number;
  current: number;
}

/**
 * nginx's smooth weighted round robin: every cycle of sum(weights) picks gives each node exactly its
 * weight's share, interleaved rather than in runs (3:2:1 → a b a c b a). Node `priority` splits nodes into
 * tiers; a lower tier is used only when every node above it was tried (backup nodes). Weight 0 never
 * receives traffic.
 */
class RoundRobinBalancer implements Balancer {
  private readonly tiers: Slot[][];

  constructor(nodes: readonly UpstreamNode[]) {
    const byPriority = new Map<number, Slot[]>();
    for (const node of nodes) {
      if (node.weight <= 0) continue;
      let tier = byPriority.get(node.priority);
      if (tier === undefined) byPriority.set(node.priority, (tier = []));
      tier.push({ node, weight: node.weight, current: 0 });
    }
    this.tiers = [...byPriority.entries()].sort((a, b) => b[0] - a[0]).map(([, slots]) => slots);
  }

  pick(_request: BalancerRequest, tried: ReadonlySet<string> | undefined): UpstreamNode | undefined {
    for (const tier of this.tiers) {
      let best: Slot | undefined;
      let total = 0;
      for (const slot of tier) {
        if (tried !== undefined && tried.has(slot.node.key)) continue;
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

import type { VarSource } from "../vars/var-source.js";
import type { Balancer, UpstreamNode } from "./balancer.js";
import { priorityTiers } from "./tiers.js";

/**
 * least_conn: the node with the fewest requests in flight relative to its weight, counted per gateway
 * instance through the attempt hooks. Ties rotate so equal nodes share. Priority tiers as everywhere.
 */
interface Slot {
  node: UpstreamNode;
  active: number;
}

class LeastConnBalancer implements Balancer {
  private readonly tiers: Slot[][];
  private readonly byKey = new Map<string, Slot>();
  private rotation = 0;

  constructor(nodes: readonly UpstreamNode[]) {
    this.tiers = priorityTiers(nodes, (node) => {
      const slot = { node, active: 0 };
      this.byKey.set(node.key, slot);
      return slot;
    });
  }

  pick(_request: VarSource, tried: ReadonlySet<string> | undefined): UpstreamNode | undefined {
    this.rotation++;
    for (const tier of this.tiers) {
      let best: Slot | undefined;
      let bestScore = Number.POSITIVE_INFINITY;
      const n = tier.length;
      for (let i = 0; i < n; i++) {
        const slot = tier[(i + this.rotation) % n]!;
        if (tried !== undefined && tried.has(slot.node.key)) continue;
        const score = (slot.active + 1) / slot.node.weight;
        if (score < bestScore) {
          best = slot;
          bestScore = score;
        }
      }
      if (best !== undefined) return best.node;
    }
    return undefined;
  }

  onAttemptStart(node: UpstreamNode): void {
    const slot = this.byKey.get(node.key);
    if (slot !== undefined) slot.active++;
  }

  onAttemptEnd(node: UpstreamNode): void {
    const slot = this.byKey.get(node.key);
    if (slot !== undefined && slot.active > 0) slot.active--;
  }
}

export function createLeastConnBalancer(nodes: readonly UpstreamNode[]): Balancer {
  return new LeastConnBalancer(nodes);
}

import type { UpstreamNode } from "./balancer.js";

/**
 * Nodes grouped into priority tiers, highest priority first, each node mapped to a balancer's own slot.
 * Weight-0 nodes never receive traffic, so they are left out here for every balancer.
 */
export function priorityTiers<T>(nodes: readonly UpstreamNode[], slot: (node: UpstreamNode) => T): T[][] {
  const byPriority = new Map<number, T[]>();
  for (const node of nodes) {
    if (!(node.weight > 0)) continue;
    let tier = byPriority.get(node.priority);
    if (tier === undefined) byPriority.set(node.priority, (tier = []));
    tier.push(slot(node));
  }
  return [...byPriority.entries()].sort((a, b) => b[0] - a[0]).map(([, tier]) => tier);
}

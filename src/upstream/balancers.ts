import type { Balancer, BalancerOptions, UpstreamNode } from "./balancer.js";
import { createChashBalancer } from "./chash.js";
import { createEwmaBalancer } from "./ewma.js";
import { createLeastConnBalancer } from "./least-conn.js";
import { createRoundRobinBalancer } from "./roundrobin.js";

/** The balancer for an upstream `type` (the Admin API only accepts these four). */
export function createBalancer<N extends UpstreamNode>(
  type: string,
  nodes: readonly N[],
  options: BalancerOptions,
  log?: (msg: string) => void,
): Balancer<N> {
  // Every balancer returns one of the node objects it was built from, never a copy, so the caller's node
  // type (a compiled node with its pool, an AI instance) survives the pick.
  return balancerOf(type, nodes, options, log) as Balancer<N>;
}

function balancerOf(
  type: string,
  nodes: readonly UpstreamNode[],
  options: BalancerOptions,
  log?: (msg: string) => void,
): Balancer {
  switch (type) {
    case "chash":
      return createChashBalancer(nodes, options);
    case "least_conn":
      return createLeastConnBalancer(nodes);
    case "ewma":
      return createEwmaBalancer(nodes, undefined, undefined, options.latency);
    case "roundrobin":
      return createRoundRobinBalancer(nodes);
    default:
      log?.(`upstream type "${type}" is unknown; using roundrobin`);
      return createRoundRobinBalancer(nodes);
  }
}

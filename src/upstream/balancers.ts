import type { Balancer, UpstreamNode } from "./balancer.js";
import { createChashBalancer } from "./chash.js";
import { createEwmaBalancer } from "./ewma.js";
import { createLeastConnBalancer } from "./least-conn.js";
import { createRoundRobinBalancer } from "./roundrobin.js";

/** The balancer for an upstream `type` (the Admin API only accepts these four). */
export function createBalancer(
  type: string,
  nodes: readonly UpstreamNode[],
  options: { key?: string; hashOn?: string },
  log?: (msg: string) => void,
): Balancer {
  switch (type) {
    case "chash":
      return createChashBalancer(nodes, options);
    case "least_conn":
      return createLeastConnBalancer(nodes);
    case "ewma":
      return createEwmaBalancer(nodes);
    case "roundrobin":
      return createRoundRobinBalancer(nodes);
    default:
      log?.(`upstream type "${type}" is unknown; using roundrobin`);
      return createRoundRobinBalancer(nodes);
  }
}

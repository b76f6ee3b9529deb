import type { Balancer, UpstreamNode } from "./balancer.js";
import { createRoundRobinBalancer } from "./roundrobin.js";

/**
 * Balancer by upstream `type`. chash, least_conn and ewma arrive with the load-balancing work; until then
 * they are served by round robin and the compiler says so once per config change.
 */
export function createBalancer(
  type: string,
  nodes: readonly UpstreamNode[],
  options: { key?: string; hashOn?: string },
  log?: (msg: string) => void,
): Balancer {
  switch (type) {
    case "roundrobin":
      return createRoundRobinBalancer(nodes);
    default:
      log?.(`upstream type "${type}" is not implemented yet; using roundrobin (key=${options.key ?? ""})`);
      return createRoundRobinBalancer(nodes);
  }
}

import type { VarSource } from "../vars/var-source.js";
import type { Balancer, UpstreamNode } from "./balancer.js";
import { priorityTiers } from "./tiers.js";

/**
 * Consistent hashing (APISIX `chash`): every node owns POINTS_PER_WEIGHT × weight points on a 32-bit ring;
 * a request goes to the first point clockwise of its key's hash. Adding or removing one node of N moves
 * only about 1/N of the keys. Retries walk the ring on to the next untried node; priority tiers get a ring
 * each, used highest first.
 */
const POINTS_PER_WEIGHT = 160;
const MAX_POINTS = 200_000;

/** FNV-1a, 32-bit: fast, stable across processes and versions (keys must map the same after a restart). */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // final avalanche (murmur3 fmix32) so similar keys spread over the ring
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

interface Ring {
  points: Uint32Array;
  owners: UpstreamNode[];
  size: number;
}

function buildRing(nodes: readonly UpstreamNode[]): Ring {
  const total = nodes.reduce((a, n) => a + n.weight, 0);
  const perWeight = Math.max(1, Math.min(POINTS_PER_WEIGHT, Math.floor(MAX_POINTS / Math.max(total, 1))));
  const entries: { point: number; node: UpstreamNode }[] = [];
  for (const node of nodes) {
    for (let i = 0; i < node.weight * perWeight; i++) entries.push({ point: hash32(`${node.key}#${i}`), node });
  }
  entries.sort((a, b) => a.point - b.point);
  return {
    points: Uint32Array.from(entries, (e) => e.point),
    owners: entries.map((e) => e.node),
    size: new Set(nodes).size,
  };
}

/** How the request key is read, per APISIX's hash_on. */
export function keyReader(hashOn: string | undefined, key: string | undefined): (r: VarSource) => string | undefined {
  const k = key ?? "remote_addr";
  switch (hashOn ?? "vars") {
    case "header":
      return (r) => r.var(`http_${k.toLowerCase().replaceAll("-", "_")}`);
    case "cookie":
      return (r) => r.var(`cookie_${k}`);
    case "consumer":
      return (r) => r.var("consumer_name");
    case "vars_combinations":
    case "vars_combination": {
      const parts = k.split(/(\$\{?[\w.]+\}?)/).filter((p) => p !== "");
      return (r) => {
        let out = "";
        let resolved = false;
        for (const p of parts) {
          if (p.startsWith("$")) {
            const v = r.var(p.replace(/^\$\{?|\}$/g, ""));
            if (v !== undefined && v !== "") resolved = true;
            out += v ?? "";
          } else out += p;
        }
        return resolved ? out : undefined;
      };
    }
    default:
      return (r) => r.var(k);
  }
}

class ChashBalancer implements Balancer {
  private readonly tiers: Ring[];
  private readonly readKey: (r: VarSource) => string | undefined;

  constructor(nodes: readonly UpstreamNode[], options: { key?: string; hashOn?: string }) {
    this.tiers = priorityTiers(nodes, (n) => n).map(buildRing);
    this.readKey = keyReader(options.hashOn, options.key);
  }

  pick(request: VarSource, tried: ReadonlySet<string> | undefined): UpstreamNode | undefined {
    const raw = this.readKey(request);
    // APISIX: no key value → hash the client address.
    const h = hash32(raw === undefined || raw === "" ? (request.var("remote_addr") ?? "") : raw);
    for (const ring of this.tiers) {
      const n = ring.points.length;
      if (n === 0) continue;
      let lo = 0;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (ring.points[mid]! < h) lo = mid + 1;
        else hi = mid;
      }
      const start = lo === n ? 0 : lo;
      if (tried === undefined) return ring.owners[start];
      // Walk clockwise to the next node not tried yet; give up on this tier once all its nodes were seen.
      const seen = new Set<string>();
      for (let i = 0; i < n && seen.size < ring.size; i++) {
        const node = ring.owners[(start + i) % n]!;
        if (!tried.has(node.key)) return node;
        seen.add(node.key);
      }
    }
    return undefined;
  }
}

export function createChashBalancer(
  nodes: readonly UpstreamNode[],
  options: { key?: string; hashOn?: string },
): Balancer {
  return new ChashBalancer(nodes, options);
}

import type { VarSource } from "../vars/var-source.js";
import type { Balancer, UpstreamNode } from "./balancer.js";
import { priorityTiers } from "./tiers.js";

/**
 * Consistent hashing (APISIX `chash`): every node owns POINTS_PER_WEIGHT × weight points on a 32-bit ring;
 * a request goes to the first point clockwise of its key's hash. Adding or removing one node of N moves
 * only about 1/N of the keys. Retries walk the ring on to the next untried node; priority tiers get a ring
 * each, used highest first.
 *
 * With `boundedLoad` c (a Weir extension, "consistent hashing with bounded loads", Mirrokni, Thorup and
 * Zadimoghaddam 2016, as HAProxy's hash-balance-factor) no node takes more than c × its weight's share of
 * the calls in flight: a key whose node is full walks on clockwise to the next node with room. Affinity
 * holds while the load is even and yields to the neighbours when one key (a hot prompt prefix) is hot.
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

export interface ChashOptions {
  key?: string;
  hashOn?: string;
  /** c ≥ 1: the most calls in flight a node may hold, as a multiple of its weight's share of all of them. */
  boundedLoad?: number;
}

class ChashBalancer implements Balancer {
  private readonly tiers: Ring[];
  private readonly readKey: (r: VarSource) => string | undefined;
  private readonly bound: number | undefined;
  /** Calls in flight per node key and in total; kept only with a bound. */
  private readonly active = new Map<string, number>();
  private totalActive = 0;
  private readonly weightOf = new Map<string, number>();
  private totalWeight = 0;

  constructor(nodes: readonly UpstreamNode[], options: ChashOptions) {
    this.tiers = priorityTiers(nodes, (n) => n).map(buildRing);
    this.readKey = keyReader(options.hashOn, options.key);
    this.bound = options.boundedLoad;
    if (this.bound !== undefined) {
      for (const n of nodes) {
        if (!(n.weight > 0) || this.weightOf.has(n.key)) continue;
        this.weightOf.set(n.key, n.weight);
        this.totalWeight += n.weight;
      }
    }
  }

  /** Whether `node` can take one more call under the bound: active + 1 ≤ ⌈c × (total + 1) × w / W⌉. */
  private hasRoom(node: UpstreamNode): boolean {
    const c = this.bound;
    if (c === undefined) return true;
    const capacity = Math.ceil((c * (this.totalActive + 1) * node.weight) / this.totalWeight);
    return (this.active.get(node.key) ?? 0) + 1 <= capacity;
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
      if (tried === undefined && this.bound === undefined) return ring.owners[start];
      // Walk clockwise to the next node not tried yet (and, with a bound, with room); give up on this tier
      // once all its nodes were seen. Some node always has room: the bound's capacities sum to more than
      // the calls in flight, unless the nodes with room were all tried: then the bound yields to the retry.
      for (const bounded of this.bound === undefined ? [false] : [true, false]) {
        const seen = new Set<string>();
        for (let i = 0; i < n && seen.size < ring.size; i++) {
          const node = ring.owners[(start + i) % n]!;
          if (tried?.has(node.key) !== true && (!bounded || this.hasRoom(node))) return node;
          seen.add(node.key);
        }
      }
    }
    return undefined;
  }

  onAttemptStart(node: UpstreamNode): void {
    if (this.bound === undefined) return;
    this.active.set(node.key, (this.active.get(node.key) ?? 0) + 1);
    this.totalActive++;
  }

  onAttemptEnd(node: UpstreamNode): void {
    if (this.bound === undefined) return;
    const a = this.active.get(node.key) ?? 0;
    if (a === 0) return;
    this.active.set(node.key, a - 1);
    this.totalActive--;
  }
}

export function createChashBalancer(nodes: readonly UpstreamNode[], options: ChashOptions): Balancer {
  return new ChashBalancer(nodes, options);
}

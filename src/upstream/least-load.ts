import type { VarSource } from "../vars/var-source.js";
import type { Balancer, UpstreamNode } from "./balancer.js";
import { priorityTiers } from "./tiers.js";

/**
 * least_load (a Weir extension): the replica that is least busy by what the model server itself reports
 * (its queue, the requests it runs, how full its KV cache is), scraped in the background, corrected by this
 * gateway's exact count of calls it sent since that scrape. A scrape is a snapshot up to an interval old;
 * without the correction every call of a burst between two scrapes would land on the replica that looked
 * idle at the last one (the "least-busy router sends the whole queue to the first vLLM replica" bug).
 *
 * A node without a fresh reading (no metrics endpoint, a failing or stale scrape) is scored by the calls
 * in flight alone, as least_conn does, so the balancer degrades to least_conn rather than to guessing.
 */

/** What a node's model server last reported; the scraper's state, read without copying. */
export interface LoadReading {
  /** No good scrape within the staleness bound: the figures below are not used. */
  readonly stale: boolean;
  /** Changes with every good scrape: the calls sent since then are counted from this point. */
  readonly generation: number;
  readonly signals:
    | {
        readonly waiting: number | undefined;
        readonly running: number | undefined;
        /** 0..1 */
        readonly kvUsage: number | undefined;
      }
    | undefined;
}

/** Where a node's reading comes from; undefined for a node nothing scrapes. */
export type LoadReadings = (node: UpstreamNode) => { readonly state: LoadReading } | undefined;

/**
 * KV usage below the knee costs nothing extra; above it the score grows linearly to (1 + KV_PRESSURE)× at a
 * full cache. vLLM starts preempting (and recomputing) sequences when its KV blocks run out, so a replica
 * near a full cache is slower than its queue says, and a new long prompt makes it worse.
 */
const KV_KNEE = 0.8;
const KV_PRESSURE = 2;

interface Slot {
  readonly node: UpstreamNode;
  readonly source: { readonly state: LoadReading } | undefined;
  /** Calls this gateway has in flight to the node. */
  active: number;
  /** `active` when the current scrape generation was first seen. */
  activeAtScrape: number;
  generation: number;
}

/** A node's load as the balancer sees it now, for the Control API and tests. */
export interface LoadEstimate {
  readonly key: string;
  readonly inFlight: number;
  /** Requests the server queues and runs, corrected by the calls sent and finished since its scrape. */
  readonly estimated: number;
  readonly kvUsage: number | undefined;
  readonly score: number;
  /** The estimate used the server's figures (false: in-flight count only). */
  readonly fresh: boolean;
}

class LeastLoad implements LeastLoadBalancer {
  private readonly tiers: Slot[][];
  private readonly byKey = new Map<string, Slot>();
  private rotation = 0;

  constructor(nodes: readonly UpstreamNode[], readings: LoadReadings) {
    this.tiers = priorityTiers(nodes, (node) => {
      const slot: Slot = { node, source: readings(node), active: 0, activeAtScrape: 0, generation: -1 };
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
        // Start at a rotating offset so equal scores take turns instead of all going to the first node.
        const slot = tier[(i + this.rotation) % n]!;
        if (tried?.has(slot.node.key)) continue;
        const score = this.score(slot);
        if (score < bestScore) {
          best = slot;
          bestScore = score;
        }
      }
      if (best !== undefined) return best.node;
    }
    return undefined;
  }

  private score(slot: Slot): number {
    const { estimated, kvUsage } = this.estimate(slot);
    let score = (estimated + 1) / slot.node.weight;
    if (kvUsage !== undefined && kvUsage > KV_KNEE) score *= 1 + (KV_PRESSURE * (kvUsage - KV_KNEE)) / (1 - KV_KNEE);
    return score;
  }

  private estimate(slot: Slot): { estimated: number; kvUsage: number | undefined; fresh: boolean } {
    const state = slot.source?.state;
    const signals = state?.signals;
    if (state === undefined || state.stale || signals === undefined) {
      return { estimated: slot.active, kvUsage: undefined, fresh: false };
    }
    if (state.generation !== slot.generation) {
      slot.generation = state.generation;
      slot.activeAtScrape = slot.active;
    }
    const reported = (signals.waiting ?? 0) + (signals.running ?? 0);
    // The server's figure includes the calls this gateway had in flight at the scrape; what changed since
    // is active − activeAtScrape (sent minus finished). Never below our own exact count: the server may
    // not have seen a call that is still connecting.
    const estimated = Math.max(slot.active, reported + slot.active - slot.activeAtScrape);
    return { estimated, kvUsage: signals.kvUsage, fresh: true };
  }

  onAttemptStart(node: UpstreamNode): void {
    const slot = this.byKey.get(node.key);
    if (slot !== undefined) slot.active++;
  }

  onAttemptEnd(node: UpstreamNode): void {
    const slot = this.byKey.get(node.key);
    if (slot !== undefined && slot.active > 0) slot.active--;
  }

  estimates(): LoadEstimate[] {
    const out: LoadEstimate[] = [];
    for (const slot of this.byKey.values()) {
      const e = this.estimate(slot);
      out.push({
        key: slot.node.key,
        inFlight: slot.active,
        estimated: e.estimated,
        kvUsage: e.kvUsage,
        score: this.score(slot),
        fresh: e.fresh,
      });
    }
    return out;
  }
}

export interface LeastLoadBalancer extends Balancer {
  estimates(): LoadEstimate[];
}

export function createLeastLoadBalancer(nodes: readonly UpstreamNode[], readings: LoadReadings): LeastLoadBalancer {
  return new LeastLoad(nodes, readings);
}

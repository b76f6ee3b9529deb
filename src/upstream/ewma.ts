import type { VarSource } from "../vars/var-source.js";
import type { Balancer, UpstreamNode } from "./balancer.js";
import { priorityTiers } from "./tiers.js";

/**
 * ewma: latency-aware balancing as APISIX's (from lua-resty-balancer): each node keeps an exponentially
 * decayed response time (decay constant 10 s); a pick compares two random untried nodes of the highest
 * tier and takes the one whose ewma × (in-flight + 1) is lower. A failed attempt counts as a very slow one,
 * so traffic moves off failing nodes too. Over AI instances (latency "first-token") the sample is the time to
 * the first token instead of the whole response, which for a stream is mostly the answer's length.
 */
const DECAY_MS = 10_000;
const FAILURE_PENALTY_MS = 10_000;

interface Slot {
  node: UpstreamNode;
  ewma: number;
  lastUpdate: number;
  active: number;
}

class EwmaBalancer implements Balancer {
  private readonly tiers: Slot[][];
  private readonly byKey = new Map<string, Slot>();
  private readonly now: () => number;
  private readonly random: () => number;
  /** Whether a successful attempt's end is a sample (else onFirstToken gives them). */
  private readonly samplesOnEnd: boolean;

  constructor(
    nodes: readonly UpstreamNode[],
    now: () => number,
    random: () => number,
    latency: "response" | "first-token",
  ) {
    this.now = now;
    this.random = random;
    this.samplesOnEnd = latency === "response";
    this.tiers = priorityTiers(nodes, (node) => {
      const slot = { node, ewma: 0, lastUpdate: 0, active: 0 };
      this.byKey.set(node.key, slot);
      return slot;
    });
  }

  private score(slot: Slot, now: number): number {
    // The estimate decays towards 0 while a node gets no feedback, so an idle node is tried again.
    const decayed = slot.ewma * Math.exp(-(now - slot.lastUpdate) / DECAY_MS);
    return decayed * (slot.active + 1);
  }

  pick(_request: VarSource, tried: ReadonlySet<string> | undefined): UpstreamNode | undefined {
    const now = this.now();
    for (const tier of this.tiers) {
      const candidates = tried === undefined ? tier : tier.filter((s) => !tried.has(s.node.key));
      if (candidates.length === 0) continue;
      if (candidates.length === 1) return candidates[0]!.node;
      const i = Math.floor(this.random() * candidates.length);
      let j = Math.floor(this.random() * (candidates.length - 1));
      if (j >= i) j++;
      const a = candidates[i]!;
      const b = candidates[j]!;
      return (this.score(a, now) <= this.score(b, now) ? a : b).node;
    }
    return undefined;
  }

  onAttemptStart(node: UpstreamNode): void {
    const slot = this.byKey.get(node.key);
    if (slot !== undefined) slot.active++;
  }

  onAttemptEnd(node: UpstreamNode, latencyMs: number, failed: boolean): void {
    const slot = this.byKey.get(node.key);
    if (slot === undefined) return;
    if (slot.active > 0) slot.active--;
    if (failed) this.sample(slot, Math.max(latencyMs, FAILURE_PENALTY_MS));
    else if (this.samplesOnEnd) this.sample(slot, latencyMs);
  }

  onFirstToken(node: UpstreamNode, latencyMs: number): void {
    if (this.samplesOnEnd) return;
    const slot = this.byKey.get(node.key);
    if (slot !== undefined) this.sample(slot, latencyMs);
  }

  private sample(slot: Slot, latencyMs: number): void {
    const now = this.now();
    const weight = slot.lastUpdate === 0 ? 0 : Math.exp(-(now - slot.lastUpdate) / DECAY_MS);
    slot.ewma = slot.ewma * weight + latencyMs * (1 - weight);
    slot.lastUpdate = now;
  }
}

export function createEwmaBalancer(
  nodes: readonly UpstreamNode[],
  now: () => number = () => performance.now(),
  random: () => number = Math.random,
  latency: "response" | "first-token" = "response",
): Balancer {
  return new EwmaBalancer(nodes, now, random, latency);
}

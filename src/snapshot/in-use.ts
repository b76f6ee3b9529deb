import type { HealthCheckManager } from "../upstream/health.js";
import type { CompiledUpstream, compileUpstream } from "../upstream/upstream.js";

/** The health checker option of compileUpstream. */
export type CheckerOption = Parameters<typeof compileUpstream>[5];

/** A compiled upstream and the key its health checker was acquired under. */
export interface HeldUpstream {
  readonly upstream: CompiledUpstream;
  readonly healthKey: string;
}

/**
 * What one snapshot keeps open: the connection pools and health checkers of every upstream it can proxy
 * to. After the swap ConfigSync closes the pools and stops the checkers that are not in here any more.
 */
export class InUse {
  readonly poolKeys = new Set<string>();
  readonly healthKeys = new Set<string>();

  constructor(private readonly health: HealthCheckManager | undefined) {}

  /** What compileUpstream needs to acquire the checker under `key` (undefined: no health checking here). */
  checker(key: string, name: string): CheckerOption {
    return this.health === undefined ? undefined : { manager: this.health, key, name };
  }

  /**
   * Keeps `upstream`'s pools open and, when it has a checker, the checker under `healthKey` running. The
   * one place that rule lives, for stored, route and plugin upstreams alike, whether compiled for this
   * snapshot or carried over from the last.
   */
  hold(upstream: CompiledUpstream, healthKey: string | undefined): void {
    for (const n of upstream.nodes) this.poolKeys.add(n.poolKey);
    if (upstream.health !== undefined && healthKey !== undefined) this.healthKeys.add(healthKey);
  }
}

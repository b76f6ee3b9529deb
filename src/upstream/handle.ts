import type { CompiledUpstream } from "./upstream.js";

/**
 * An upstream a plugin can send a request to (traffic-split, an AI instance's origin). Plugins get one
 * from an UpstreamResolver and hand it back to the lifecycle untouched: a stored upstream's id, looked up
 * when a request uses it so edits apply at once, or an upstream compiled with the plugin.
 */
export type UpstreamHandle = { readonly kind: "id"; readonly id: string } | CompiledUpstreamHandle;

export interface CompiledUpstreamHandle {
  readonly kind: "compiled";
  readonly upstream: CompiledUpstream;
}

export interface UpstreamResolver {
  /** A stored upstream, looked up when a request uses it, so edits to it apply at once. */
  byId(id: string): UpstreamHandle;
  /** An inline upstream config (validated by the caller), compiled once with the plugin. */
  inline(config: Record<string, unknown>): CompiledUpstreamHandle;
}

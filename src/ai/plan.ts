import type { Reply } from "../http/reply.js";
import type { Balancer, UpstreamNode } from "../upstream/balancer.js";
import { createBalancer } from "../upstream/balancers.js";
import type { CompiledUpstreamHandle, UpstreamResolver } from "../upstream/handle.js";
import { type CooldownPolicy, InstanceCooldown } from "./cooldown.js";
import type { AiProtocol, JsonObject } from "./protocols.js";
import { PROVIDERS, type ProviderDef, UNSUPPORTED_PROVIDERS } from "./providers.js";
import type { LlmUsage } from "./usage.js";

/** One model instance (APISIX's ai-proxy-multi `instances[]` item), compiled once per config change. */
export interface AiInstance extends UpstreamNode {
  readonly name: string;
  readonly provider: ProviderDef;
  /** A one-node inline upstream to the instance's origin: pooled connections, TLS, health checks. */
  readonly upstream: CompiledUpstreamHandle;
  /** Path and query from `override.endpoint` when it names one; the provider's own path otherwise. */
  readonly endpointPath: string | undefined;
  /** `auth.query` as an encoded query string (without `?`), or "". */
  readonly authQuery: string;
  /** `auth.header` as a flat [name, value, …] list. */
  readonly authHeaders: readonly string[];
  /** `options`: `model` replaces the client's model; the other keys are set on the request body. */
  readonly model: string | undefined;
  readonly options: JsonObject | undefined;
  /** `override.llm_options.max_tokens`: always wins over the client's value. */
  readonly maxTokens: number | undefined;
  /** `override.request_body`: per target protocol, merged into the outgoing body. */
  readonly bodyOverride: Partial<Record<AiProtocol, JsonObject>> | undefined;
  readonly forceBodyOverride: boolean;
  /** The deployment's sit-out, shared with every instance of any route that sends to the same one. */
  readonly cooldown: InstanceCooldown;
}

/** When ai-proxy-multi moves on to the next instance. */
export interface FallbackPolicy {
  http429: boolean;
  http5xx: boolean;
  /** Instances that other plugins (ai-rate-limiting) or health checks rule out are skipped. */
  rateLimiting: boolean;
  statuses: ReadonlySet<number>;
  /** Extra instances one request may try; Infinity when unset. */
  maxRetries: number;
  /** Only failures that came this fast (ms) fall back; Infinity when unset. */
  withinMs: number;
}

/** Everything an AI route needs at request time, built by ai-proxy / ai-proxy-multi at compile time. */
export interface AiPlan {
  readonly instances: readonly AiInstance[];
  readonly balancer: Balancer<AiInstance>;
  readonly fallback: FallbackPolicy | undefined;
  readonly timeoutMs: number;
  readonly maxRequestBodyBytes: number;
  readonly maxStreamDurationMs: number | undefined;
  readonly maxResponseBytes: number | undefined;
  /** The balancer keys on `llm_prompt_prefix`, so the access phase computes it (ai/prefix-key.ts). */
  readonly usesPromptPrefix: boolean;
  /** ai-proxy-multi's `cooldown`: sit-outs after failures in a row (Retry-After is honoured without it). */
  readonly cooldown: CooldownPolicy | undefined;
}

/** What the client learns about the answer, set as request variables for plugins and the access log. */
export interface AiResult {
  instance: string;
  usage: LlmUsage;
  model: string | undefined;
  timeToFirstTokenMs: number | undefined;
}

/** One request's AI call: the plan, what the client asked, and instances other plugins ruled out. */
export interface AiRequest {
  readonly plan: AiPlan;
  readonly protocol: AiProtocol;
  readonly body: JsonObject;
  /** The client's body bytes, reused as they are when nothing needs changing. */
  readonly raw: Buffer;
  readonly stream: boolean;
  /** The client asked for a usage chunk in its stream (OpenAI stream_options.include_usage). */
  readonly clientWantsUsage: boolean;
  /**
   * Instances over their budget, with the answer to give if one is picked anyway; filled by
   * ai-rate-limiting. With a `rate_limiting` fallback they are skipped instead.
   */
  skip: Map<string, Reply> | undefined;
  /** Which instance served the request and what it cost; set before the log phase. */
  result: AiResult | undefined;
}

export interface InstanceConfig {
  name: string;
  provider: string;
  weight: number;
  priority?: number;
  auth: { header?: Record<string, string>; query?: Record<string, string> };
  options?: JsonObject;
  override?: {
    endpoint?: string;
    llm_options?: { max_tokens?: number };
    request_body?: Partial<Record<AiProtocol, JsonObject>>;
    request_body_force_override?: boolean;
  };
  checks?: { active: JsonObject };
}

export interface TransportConfig {
  timeout?: number;
  max_req_body_size?: number;
  max_stream_duration_ms?: number;
  max_response_bytes?: number;
  keepalive?: boolean;
  keepalive_timeout?: number;
  keepalive_pool?: number;
  ssl_verify?: boolean;
}

/**
 * Checks what the schema cannot: a provider Weir serves, a usable endpoint. `path` is where the instance
 * sits in the plugin config ("" for ai-proxy, "instances[2]." for ai-proxy-multi); messages name the field.
 */
export function checkInstance(inst: InstanceConfig, path: string): string | undefined {
  const unsupported = UNSUPPORTED_PROVIDERS.get(inst.provider);
  if (unsupported !== undefined) return `property "${path}provider" validation failed: ${unsupported}`;
  const provider = PROVIDERS.get(inst.provider);
  if (provider === undefined) return `${path}provider: ai provider ${inst.provider} is not supported by Weir`;
  const endpoint = inst.override?.endpoint;
  if (endpoint === undefined) {
    if (provider.host === undefined) return `${path}override.endpoint is required for provider ${provider.name}`;
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return `${path}override.endpoint is not a valid URL: ${endpoint}`;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return `${path}override.endpoint must be an http or https URL`;
  }
  return undefined;
}

/** How a plugin keeps state across recompiles (PluginScope.keep); without it every compile starts afresh. */
export type KeepState = <T>(kind: string, identity: unknown, create: () => T) => T;

const fresh: KeepState = (_kind, _identity, create) => create();

/**
 * Compiles one instance: its origin becomes a one-node inline upstream (pool, TLS, active checks), and its
 * sit-out is the deployment's: found again by provider, endpoint, credentials and model, so an edit of
 * the route, the instance's weight or its name does not put a rate-limited instance back in the rotation.
 */
export function compileInstance(
  inst: InstanceConfig,
  transport: TransportConfig,
  upstreams: UpstreamResolver,
  keep: KeepState = fresh,
): AiInstance {
  const provider = PROVIDERS.get(inst.provider)!;
  let scheme = "https";
  let host = provider.host ?? "";
  let port = provider.port;
  let endpointPath: string | undefined;
  if (inst.override?.endpoint !== undefined) {
    const url = new URL(inst.override.endpoint);
    scheme = url.protocol === "http:" ? "http" : "https";
    host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
    port = url.port === "" ? (scheme === "http" ? 80 : 443) : Number(url.port);
    // Scheme + host only: the provider's path applies. A path (or query) replaces it entirely.
    if ((url.pathname !== "/" && url.pathname !== "") || url.search !== "") endpointPath = url.pathname + url.search;
  }
  const timeoutS = (transport.timeout ?? DEFAULT_TIMEOUT_MS) / 1000;
  const upstreamConfig: JsonObject = {
    type: "roundrobin",
    nodes: [{ host, port, weight: 1 }],
    scheme,
    pass_host: "node",
    timeout: { connect: timeoutS, send: timeoutS, read: timeoutS },
    keepalive_pool: {
      size: transport.keepalive_pool ?? 30,
      idle_timeout: transport.keepalive === false ? 0.001 : (transport.keepalive_timeout ?? 60000) / 1000,
      requests: 1000,
    },
    tls: { verify: transport.ssl_verify !== false },
  };
  if (inst.checks !== undefined) upstreamConfig.checks = { active: inst.checks.active };
  const authHeaders: string[] = [];
  for (const [k, v] of Object.entries(inst.auth.header ?? {})) authHeaders.push(k, v);
  const { model, ...options } = inst.options ?? {};
  return {
    name: inst.name,
    key: inst.name,
    host,
    port,
    weight: inst.weight,
    priority: inst.priority ?? 0,
    provider,
    upstream: upstreams.inline(upstreamConfig),
    endpointPath,
    authQuery: new URLSearchParams(inst.auth.query ?? {}).toString(),
    authHeaders,
    model: typeof model === "string" ? model : undefined,
    options: Object.keys(options).length > 0 ? options : undefined,
    maxTokens: inst.override?.llm_options?.max_tokens,
    bodyOverride: inst.override?.request_body,
    forceBodyOverride: inst.override?.request_body_force_override === true,
    cooldown: keep(
      "ai-instance-cooldown",
      [inst.provider, inst.override?.endpoint ?? null, inst.auth, typeof model === "string" ? model : null],
      () => new InstanceCooldown(),
    ),
  };
}

const DEFAULT_TIMEOUT_MS = 30000;
const DEFAULT_MAX_REQUEST_BODY = 67108864;

/** The plan of an AI route: its compiled instances, how to pick among them, fallbacks and limits. */
export function buildPlan(
  instances: readonly AiInstance[],
  conf: TransportConfig,
  balancer: Balancer<AiInstance>,
  fallback: FallbackPolicy | undefined,
  balancerKey?: string,
  cooldown?: CooldownPolicy,
): AiPlan {
  return {
    usesPromptPrefix: balancerKey?.includes("llm_prompt_prefix") === true,
    instances,
    balancer,
    fallback,
    cooldown,
    timeoutMs: conf.timeout ?? DEFAULT_TIMEOUT_MS,
    maxRequestBodyBytes: conf.max_req_body_size ?? DEFAULT_MAX_REQUEST_BODY,
    maxStreamDurationMs: conf.max_stream_duration_ms,
    maxResponseBytes: conf.max_response_bytes,
  };
}

/**
 * ai-proxy-multi's `balancer.algorithm`: APISIX's roundrobin and chash, and Weir's least_conn (fewest LLM
 * calls in flight per weight) and ewma (time to first token, decayed, × calls in flight), the upstream
 * balancers fed by the same attempt hooks.
 */
export function instanceBalancer(
  instances: readonly AiInstance[],
  balancer: { algorithm?: string; hash_on?: string; key?: string; bounded_load?: number } | undefined,
): Balancer<AiInstance> {
  const type = balancer?.algorithm ?? "roundrobin";
  return createBalancer(type, instances, {
    key: balancer?.key,
    hashOn: balancer?.hash_on,
    latency: "first-token",
    boundedLoad: balancer?.bounded_load,
  });
}

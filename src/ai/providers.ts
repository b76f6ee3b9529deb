import type { AiProtocol } from "./protocols.js";

/** Where one protocol lives on a provider, and how that provider spells "max output tokens" there. */
export interface Capability {
  path: string;
  maxTokensField: "max_tokens" | "max_completion_tokens" | "max_output_tokens" | undefined;
}

export interface ProviderDef {
  readonly name: string;
  /** Default origin; undefined for providers that only work with `override.endpoint`. */
  readonly host: string | undefined;
  readonly port: number;
  readonly capabilities: Partial<Record<AiProtocol, Capability>>;
  /** Azure addresses the model through the deployment in the URL; a `model` field would be rejected. */
  readonly removeModel: boolean;
  /** Headers the provider requires, sent unless the client or the auth config sets them. */
  readonly defaultHeaders: readonly (readonly [string, string])[];
}

const chat = (path: string, maxTokensField: Capability["maxTokensField"] = "max_tokens"): Capability => ({
  path,
  maxTokensField,
});

function provider(
  name: string,
  host: string | undefined,
  capabilities: ProviderDef["capabilities"],
  extra: Partial<Pick<ProviderDef, "removeModel" | "defaultHeaders">> = {},
): ProviderDef {
  return {
    name,
    host,
    port: 443,
    capabilities,
    removeModel: extra.removeModel ?? false,
    defaultHeaders: extra.defaultHeaders ?? [],
  };
}

/**
 * The providers of APISIX's ai-providers with their endpoints. Anthropic is spoken to natively
 * (`/v1/messages`); an OpenAI chat client reaches it through Weir's translation, as an Anthropic client
 * reaches the OpenAI-style providers.
 */
export const PROVIDERS: ReadonlyMap<string, ProviderDef> = new Map(
  [
    provider("openai", "api.openai.com", {
      "openai-chat": chat("/v1/chat/completions", "max_completion_tokens"),
      "openai-responses": chat("/v1/responses", "max_output_tokens"),
      "openai-embeddings": chat("/v1/embeddings", undefined),
    }),
    provider(
      "azure-openai",
      undefined,
      {
        "openai-chat": chat("/chat/completions"),
        "openai-embeddings": chat("/embeddings", undefined),
      },
      { removeModel: true },
    ),
    provider(
      "anthropic",
      "api.anthropic.com",
      { "anthropic-messages": chat("/v1/messages") },
      { defaultHeaders: [["anthropic-version", "2023-06-01"]] },
    ),
    provider("gemini", "generativelanguage.googleapis.com", {
      "openai-chat": chat("/v1beta/openai/chat/completions", "max_completion_tokens"),
      "openai-embeddings": chat("/v1beta/openai/embeddings", undefined),
    }),
    provider("deepseek", "api.deepseek.com", { "openai-chat": chat("/chat/completions") }),
    provider("openrouter", "openrouter.ai", { "openai-chat": chat("/api/v1/chat/completions") }),
    provider("aimlapi", "api.aimlapi.com", { "openai-chat": chat("/v1/chat/completions") }),
    provider("openai-compatible", undefined, {
      "openai-chat": chat("/v1/chat/completions"),
      "openai-responses": chat("/v1/responses", "max_output_tokens"),
      "openai-embeddings": chat("/v1/embeddings", undefined),
    }),
  ].map((p) => [p.name, p]),
);

/** APISIX's provider enum; the ones Weir cannot serve are refused at config time with this reason. */
export const PROVIDER_NAMES = [...PROVIDERS.keys(), "vertex-ai", "bedrock"];
export const UNSUPPORTED_PROVIDERS: ReadonlyMap<string, string> = new Map([
  ["vertex-ai", "vertex-ai needs GCP service-account auth, which Weir does not implement yet"],
  ["bedrock", "bedrock needs AWS SigV4 signing, which Weir does not implement yet"],
]);

/**
 * How a client protocol reaches a provider: natively, through a translation, or not at all.
 * `passthrough` requests go to the client's own path on the provider.
 */
export function route(
  provider: ProviderDef,
  client: AiProtocol,
): { target: AiProtocol; capability: Capability | undefined; translate: boolean } | undefined {
  if (client === "passthrough") return { target: "passthrough", capability: undefined, translate: false };
  const native = provider.capabilities[client];
  if (native !== undefined) return { target: client, capability: native, translate: false };
  if (client === "openai-chat" && provider.capabilities["anthropic-messages"] !== undefined) {
    return { target: "anthropic-messages", capability: provider.capabilities["anthropic-messages"], translate: true };
  }
  if (client === "anthropic-messages" && provider.capabilities["openai-chat"] !== undefined) {
    return { target: "openai-chat", capability: provider.capabilities["openai-chat"], translate: true };
  }
  return undefined;
}

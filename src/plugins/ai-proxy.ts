import { type Static, Type } from "@sinclair/typebox";
import { type AiPlan, buildPlan, checkInstance, compileInstance, instanceBalancer } from "../ai/plan.js";
import { authSchema, optionsSchema, overrideSchema, providerSchema, transportFields } from "../ai/schema.js";
import type { Plugin, PluginScope } from "../plugin-api/plugin.js";
import { prepareAiRequest } from "./ai/request.js";

/**
 * ai-proxy: the route talks to one LLM provider. The client speaks OpenAI (chat, responses, embeddings)
 * or Anthropic messages; Weir injects the provider's credentials, sets the model, translates between
 * OpenAI chat and Anthropic messages when the provider speaks the other one, streams the answer back and
 * counts its tokens. The route needs no upstream.
 */
export const name = "ai-proxy";
export const priority = 1040;

export const schema = Type.Object({
  provider: providerSchema,
  provider_conf: Type.Optional(
    Type.Object({ project_id: Type.Optional(Type.String()), region: Type.Optional(Type.String({ minLength: 1 })) }),
  ),
  auth: authSchema,
  options: Type.Optional(optionsSchema),
  override: Type.Optional(overrideSchema),
  ...transportFields,
});
export type AiProxyConfig = Static<typeof schema>;

function check(conf: AiProxyConfig): string | undefined {
  return checkInstance({ ...conf, name, weight: 1 }, "");
}

function compile(conf: AiProxyConfig, scope: PluginScope): AiPlan {
  const instance = compileInstance(
    { ...conf, name: `ai-proxy-${conf.provider}`, weight: 1 },
    conf,
    scope.upstreams!,
    scope.keep,
  );
  return buildPlan([instance], conf, instanceBalancer([instance], undefined), undefined);
}

export const aiProxy: Plugin<AiProxyConfig, AiPlan> = {
  name,
  priority,
  version: "0.5",
  schema,
  encryptFields: ["auth.header.*", "auth.query.*"],
  check,
  compile,
  access: prepareAiRequest,
};

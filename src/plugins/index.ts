import type { Plugin } from "../plugin-api/plugin.js";
import { aiPromptDecorator } from "./ai-prompt-decorator.js";
import { aiPromptGuard } from "./ai-prompt-guard.js";
import { aiPromptTemplate } from "./ai-prompt-template.js";
import { aiProxy } from "./ai-proxy.js";
import { aiProxyMulti } from "./ai-proxy-multi.js";
import { aiRateLimiting } from "./ai-rate-limiting.js";
import { apiBreaker } from "./api-breaker.js";
import { basicAuth } from "./basic-auth.js";
import { clientControl } from "./client-control.js";
import { consumerRestriction } from "./consumer-restriction.js";
import { cors } from "./cors.js";
import { csrf } from "./csrf.js";
import { faultInjection } from "./fault-injection.js";
import { hmacAuth } from "./hmac-auth.js";
import { ipRestriction } from "./ip-restriction.js";
import { jwtAuth } from "./jwt-auth.js";
import { keyAuth } from "./key-auth.js";
import { limitConn } from "./limit-conn.js";
import { limitCount } from "./limit-count.js";
import { limitReq } from "./limit-req.js";
import { prometheus } from "./prometheus.js";
import { proxyMirror } from "./proxy-mirror.js";
import { proxyRewrite } from "./proxy-rewrite.js";
import { realIp } from "./real-ip.js";
import { redirect } from "./redirect.js";
import { refererRestriction } from "./referer-restriction.js";
import { requestId } from "./request-id.js";
import { requestValidation } from "./request-validation.js";
import { responseRewrite } from "./response-rewrite.js";
import { trafficSplit } from "./traffic-split.js";
import { uaRestriction } from "./ua-restriction.js";

/**
 * Every plugin Weir ships, by name. Adding a plugin = one file in this folder + one line here.
 * `conf/config.yaml`'s `plugins:` list selects which of these are enabled.
 */
const builtins: Plugin[] = [
  realIp,
  clientControl,
  requestId,
  faultInjection,
  cors,
  csrf,
  requestValidation,
  hmacAuth,
  basicAuth,
  jwtAuth,
  keyAuth,
  ipRestriction,
  uaRestriction,
  refererRestriction,
  consumerRestriction,
  aiPromptGuard,
  aiPromptTemplate,
  aiPromptDecorator,
  aiProxyMulti,
  aiProxy,
  aiRateLimiting,
  proxyMirror,
  proxyRewrite,
  apiBreaker,
  limitConn,
  limitCount,
  limitReq,
  trafficSplit,
  redirect,
  responseRewrite,
  prometheus,
];

export const pluginRegistry: ReadonlyMap<string, Plugin> = new Map(builtins.map((p) => [p.name, p]));

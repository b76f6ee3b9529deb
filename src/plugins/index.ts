import { apiBreaker } from "./api-breaker.js";
import { faultInjection } from "./fault-injection.js";
import { limitConn } from "./limit-conn.js";
import { limitReq } from "./limit-req.js";
import { proxyMirror } from "./proxy-mirror.js";
import { proxyRewrite } from "./proxy-rewrite.js";
import { requestId } from "./request-id.js";
import { trafficSplit } from "./traffic-split.js";
import type { Plugin } from "./types.js";

/**
 * Every plugin Weir ships, by name. Adding a plugin = one file in this folder + one line here.
 * `conf/config.yaml`'s `plugins:` list selects which of these are enabled.
 */
const builtins: Plugin[] = [
  requestId,
  faultInjection,
  proxyMirror,
  proxyRewrite,
  apiBreaker,
  limitConn,
  limitReq,
  trafficSplit,
];

export const pluginRegistry: ReadonlyMap<string, Plugin> = new Map(builtins.map((p) => [p.name, p]));

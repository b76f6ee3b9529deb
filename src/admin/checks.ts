import { validatePlugins, validateResource } from "../config/validate.js";
import type { Plugin } from "../plugin-api/plugin.js";
import type { ConfigStore } from "../store/types.js";
import { checkReferences, listResources } from "./references.js";
import { fail } from "./reply.js";
import type { ResourceDef } from "./resources.js";

/** What the write checks may consult besides the body. */
export interface CheckEnv {
  store: ConfigStore;
  plugins: ReadonlyMap<string, Plugin>;
  enabledPlugins: readonly string[];
  validateVars: ((expr: unknown) => string | undefined) | undefined;
  validateIp: ((entry: string) => string | undefined) | undefined;
}

export interface CheckOptions {
  /** The id (username for consumers) from the path, if any. */
  pathId: string | undefined;
  /** PUT and PATCH need an id; POST must not have one. */
  needId: boolean;
  /** PATCH may carry create_time/update_time; PUT and POST may not (APISIX 3.7+). */
  allowTime: boolean;
}

type Conf = Record<string, unknown>;
const isObject = (v: unknown): v is Conf => v !== null && typeof v === "object" && !Array.isArray(v);
const present = (v: unknown) => v !== undefined && v !== null && v !== false;

/**
 * APISIX's check_conf (resource.lua plus the resource's own checker), in APISIX's order: id rules, forbidden
 * timestamps, schema and upstream rules, then references, plugins, vars. Fills schema defaults into `conf`
 * and sets its id. Resolves to the id (username for consumers); throws a 400 AdminError otherwise.
 */
export async function checkConf(def: ResourceDef, conf: unknown, env: CheckEnv, opts: CheckOptions): Promise<string> {
  if (conf === undefined) fail(400, "missing configurations");
  if (!isObject(conf)) {
    const got = conf === null ? "null" : Array.isArray(conf) ? "array" : typeof conf;
    return fail(400, `invalid configuration: wrong type: expected object, got ${got}`);
  }

  let id: unknown;
  if (def.idField === "id") {
    id = opts.pathId ?? conf.id;
    if (opts.needId && id === undefined) fail(400, `missing ${def.kind} id`);
    if (!opts.needId && id !== undefined) fail(400, `wrong ${def.kind} id, do not need it`);
    if (opts.needId && conf.id !== undefined && String(conf.id) !== String(id)) fail(400, `wrong ${def.kind} id`);
    if (id !== undefined) conf.id = id;
  }

  if (!opts.allowTime) {
    for (const field of ["create_time", "update_time"]) {
      // APISIX's message has the double space.
      if (present(conf[field])) fail(400, `the property is forbidden:  ${field}`);
      if (isObject(conf.upstream) && present(conf.upstream[field])) {
        fail(400, `the property is forbidden:  upstream.${field}`);
      }
      if (isObject(conf.plugins) && present(conf.plugins[field]))
        fail(400, `the property is forbidden:  plugins.${field}`);
    }
  }

  const valid = validateResource(def.type, conf);
  if (!valid.ok) fail(400, valid.message);

  if (def.idField === "username") {
    if (opts.pathId !== undefined && opts.pathId !== conf.username) fail(400, "wrong username");
    id = conf.username;
  }

  const refErr = await checkReferences(env.store, def, conf);
  if (refErr !== undefined) fail(400, refErr);

  const pluginErr = validatePlugins(conf.plugins, env.plugins, def.pluginKind, {
    enabled: env.enabledPlugins,
    validateVars: env.validateVars,
  });
  if (pluginErr !== undefined) {
    fail(400, def.type === "consumers" ? `invalid plugins configuration: ${pluginErr}` : pluginErr);
  }

  if (def.type === "routes") checkRouteMatch(conf, env);
  if (def.type === "global_rules") await checkGlobalRuleConflicts(conf, String(id), env);
  return String(id);
}

function checkRouteMatch(conf: Conf, env: CheckEnv): void {
  if (conf.vars !== undefined && env.validateVars !== undefined) {
    const err = env.validateVars(conf.vars);
    if (err !== undefined) fail(400, `failed to validate the 'vars' expression: ${err}`);
  }
  if (env.validateIp === undefined) return;
  const addrs: [string, unknown][] =
    conf.remote_addr !== undefined
      ? [["remote_addr", conf.remote_addr]]
      : Array.isArray(conf.remote_addrs)
        ? conf.remote_addrs.map((a, i) => [`remote_addrs[${i}]`, a])
        : [];
  for (const [path, addr] of addrs) {
    const err = env.validateIp(String(addr));
    if (err !== undefined) fail(400, `invalid configuration: property "${path}" validation failed: ${err}`);
  }
}

/** APISIX 3.15+: one plugin may appear in only one global rule. */
async function checkGlobalRuleConflicts(conf: Conf, id: string, env: CheckEnv): Promise<void> {
  const names = Object.keys((conf.plugins as Conf | undefined) ?? {});
  if (names.length === 0) return;
  for (const entry of await listResources(env.store, "global_rules")) {
    const other = entry.value as { id?: unknown; plugins?: Conf };
    const otherId = String(other.id ?? entry.key.slice(entry.key.lastIndexOf("/") + 1));
    if (otherId === id || other.plugins === undefined) continue;
    const clash = names.find((n) => Object.hasOwn(other.plugins!, n));
    if (clash !== undefined) fail(400, `plugin '${clash}' already exists in global rule with id '${otherId}'`);
  }
}

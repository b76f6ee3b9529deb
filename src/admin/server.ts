import type { IncomingMessage, ServerResponse } from "node:http";
import type { PluginSecrets } from "../config/secrets.js";
import type { AdminKey } from "../config/types.js";
import type { Plugin } from "../plugin-api/plugin.js";
import { compileIpMatcher } from "../router/ip.js";
import { EtcdUnavailableError } from "../store/etcd.js";
import type { ConfigStore } from "../store/types.js";
import { checkToken, presentedKey, roleOf } from "./auth.js";
import { readJsonBody } from "./body.js";
import type { AdminContext } from "./context.js";
import { parseAdminPath } from "./context.js";
import { CredentialsApi } from "./credentials.js";
import { ResourceApi } from "./crud.js";
import { PluginMetadataApi } from "./metadata.js";
import { PluginsApi } from "./plugins.js";
import { AdminError, type Answer, fail, send } from "./reply.js";
import { RESOURCES } from "./resources.js";

export interface AdminOptions {
  store: ConfigStore;
  keys: AdminKey[];
  /** CIDRs allowed to reach the Admin API (APISIX allow_admin); empty = everyone. */
  allow: string[];
  /** Plugins a config may name; only those in `enabledPlugins` are accepted, as APISIX does. */
  plugins: ReadonlyMap<string, Plugin>;
  enabledPlugins: readonly string[];
  /** Checks a route's `vars` (and plugins' `_meta.filter`); the router provides it. */
  validateVars?: (expr: unknown) => string | undefined;
  /** Checks each `remote_addr(s)` entry beyond the schema; the router provides it. */
  validateIp?: (entry: string) => string | undefined;
  /** Encrypts secret plugin fields on write, decrypts (admin) or masks (viewer) them on read. */
  secrets?: PluginSecrets;
}

const METHODS = new Set(["GET", "PUT", "POST", "DELETE", "PATCH"]);
const API_VERSION = { "x-api-version": "v3" };
const ROUTE_NOT_FOUND: Answer = { status: 404, body: { error_msg: "404 Route Not Found" } };

/**
 * The APISIX v3 Admin API over the config store, as one request handler; the gateway mounts it on its own
 * listener (127.0.0.1:9180 by default).
 */
export function createAdminHandler(options: AdminOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const allowed = options.allow.length > 0 ? compileIpMatcher(options.allow) : undefined;
  const admin = new AdminApi(options);
  return (req, res) => {
    if (allowed !== undefined && !allowed(req.socket.remoteAddress ?? "")) {
      req.resume();
      send(res, { status: 403, body: { error_msg: "access to the Admin API is not allowed from this address" } });
      return;
    }
    admin.handle(req).then(
      ([answer, headers]) => send(res, answer, headers),
      (err: unknown) => {
        req.resume();
        if (err instanceof AdminError) {
          send(res, { status: err.status, body: { error_msg: err.message, ...err.extra } }, API_VERSION);
        } else if (err instanceof EtcdUnavailableError) {
          // Nothing was written; the client may retry once etcd is back.
          send(res, { status: 503, body: { error_msg: `config store unavailable: ${err.message}` } });
        } else {
          send(res, { status: 500, body: { error_msg: `internal error: ${(err as Error)?.message ?? String(err)}` } });
        }
      },
    );
  };
}

/** APISIX's admin/init.lua: the router, check_token, then run() dispatching to the resource handlers. */
class AdminApi {
  private readonly options: AdminOptions;
  private readonly resources: ResourceApi;
  private readonly credentials: CredentialsApi;
  private readonly plugins: PluginsApi;
  private readonly metadata: PluginMetadataApi;

  constructor(options: AdminOptions) {
    this.options = options;
    const env = {
      store: options.store,
      plugins: options.plugins,
      enabledPlugins: options.enabledPlugins,
      validateVars: options.validateVars,
      validateIp: options.validateIp,
      secrets: options.secrets,
    };
    this.resources = new ResourceApi(env);
    this.credentials = new CredentialsApi(env);
    this.plugins = new PluginsApi(options.plugins, options.enabledPlugins);
    this.metadata = new PluginMetadataApi(options.store, options.plugins);
  }

  async handle(req: IncomingMessage): Promise<[Answer, Record<string, string>?]> {
    const url = new URL(req.url ?? "/", "http://admin");
    const method = (req.method ?? "GET").toUpperCase();
    if (method === "HEAD" && (url.pathname === "/apisix/admin" || url.pathname === "/apisix/admin/")) {
      return [{ status: 200 }];
    }
    const path = parseAdminPath(url.pathname);
    if (path === undefined || !METHODS.has(method)) {
      req.resume();
      return [ROUTE_NOT_FOUND];
    }

    const presented = presentedKey(req, url.searchParams);
    const denied = checkToken(this.options.keys, presented, method);
    if (denied !== undefined) {
      req.resume();
      return [{ status: 401, body: { error_msg: "failed to check token", description: denied } }];
    }

    const ctx: AdminContext = {
      req,
      method,
      query: url.searchParams,
      resource: path.resource,
      id: path.id,
      subPath: path.subPath,
      body: undefined,
      role: roleOf(this.options.keys, presented),
    };
    return [await this.run(ctx, url.pathname), API_VERSION];
  }

  private async run(ctx: AdminContext, pathname: string): Promise<Answer> {
    const { resource, id, method } = ctx;
    if (pathname === "/apisix/admin/plugins/list" && method === "GET") return this.plugins.list(ctx.query);
    if (resource === "plugins" && id === "reload") {
      if (method !== "PUT") {
        fail(405, `please use PUT method to reload the plugins, ${method} method is not allowed.`);
      }
      fail(501, "reloading plugins is not supported by Weir: restart it to apply a new plugin list");
    }
    if (resource === "schema" && id === "validate" && method === "POST") {
      return this.plugins.validate(ctx.subPath[0], await readJsonBody(ctx.req));
    }
    if (resource === "stream_routes") fail(400, "stream mode is disabled, can not add stream routes");

    const def = RESOURCES.get(resource);
    const readOnly = resource === "schema" || resource === "plugins";
    if (def === undefined && !readOnly && resource !== "plugin_metadata") {
      fail(404, `Unsupported resource type: ${resource}`);
    }
    if (readOnly && method !== "GET") fail(404, "not found");

    ctx.body = await readJsonBody(ctx.req);
    const ttl = ctx.query.get("ttl");
    if (ttl !== null) {
      if (ttl.trim() === "" || !Number.isFinite(Number(ttl))) fail(400, "invalid argument ttl: should be a number");
      fail(400, "invalid argument ttl: resources that expire are not supported by Weir");
    }

    if (resource === "schema") return this.plugins.schema(id);
    if (resource === "plugins") return this.plugins.get(id, ctx.query);
    if (resource === "plugin_metadata") return this.metadata.handle(ctx);
    if (resource === "consumers" && ctx.id !== undefined && ctx.subPath[0] === "credentials") {
      return this.credentials.handle(ctx);
    }
    return this.resources.handle(def!, ctx);
  }
}

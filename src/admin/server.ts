import type { IncomingMessage, ServerResponse } from "node:http";
import type { AdminKey } from "../config/types.js";
import { validateSchema } from "../config/validate.js";
import type { Plugin } from "../plugins/types.js";
import { compileIpMatcher } from "../router/ip.js";
import { type ResourceType, resourceKey, resourcePrefix } from "../store/keys.js";
import { CompareFailedError, type ConfigStore, type StoreEntry } from "../store/types.js";
import { VERSION } from "../version.js";
import { presentedKey, roleOf } from "./auth.js";
import { mergePatch, setAtPath } from "./patch.js";
import { type CheckContext, REFERENCED_BY, RESOURCES, type ResourceDef, validateResource } from "./resources.js";

export interface AdminOptions {
  store: ConfigStore;
  keys: AdminKey[];
  /** CIDRs allowed to reach the Admin API (APISIX allow_admin); empty = everyone. */
  allow: string[];
  plugins: ReadonlyMap<string, Plugin>;
  enabledPlugins: readonly string[];
  validateVars?: (expr: unknown) => string | undefined;
  validateIp?: (entry: string) => string | undefined;
}

type Answer = { status: number; body: unknown };

const PREFIX = "/apisix/admin/";
const MAX_BODY = 1.5 * 1024 * 1024;
const ID_PATTERN = /^[a-zA-Z0-9-_.]+$/;

class AdminError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const fail = (status: number, message: string): never => {
  throw new AdminError(status, message);
};

/**
 * The APISIX v3 Admin API over the config store. Writes are validated completely before anything is
 * written, and PATCH uses compare-and-swap, so a failed or concurrent write never leaves a half-applied
 * or lost config.
 */
export function createAdminHandler(options: AdminOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const allowed = options.allow.length > 0 ? compileIpMatcher(options.allow) : undefined;
  const admin = new AdminApi(options);
  return (req, res) => {
    const remote = (req.socket.remoteAddress ?? "").replace(/^::ffff:(?=\d+\.)/, "");
    if (allowed !== undefined && !allowed(remote)) {
      send(res, { status: 403, body: { error_msg: "access to the Admin API is not allowed from this address" } });
      req.resume();
      return;
    }
    admin.handle(req).then(
      (answer) => send(res, answer),
      (err: unknown) => {
        if (err instanceof AdminError) send(res, { status: err.status, body: { error_msg: err.message } });
        else
          send(res, { status: 500, body: { error_msg: `internal error: ${(err as Error)?.message ?? String(err)}` } });
      },
    );
  };
}

function send(res: ServerResponse, answer: Answer): void {
  const body = `${JSON.stringify(answer.body)}\n`;
  res.writeHead(answer.status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    server: `Weir/${VERSION}`,
  });
  res.end(body);
}

class AdminApi {
  private readonly store: ConfigStore;
  private readonly options: AdminOptions;
  private readonly checkContext: CheckContext;
  private readonly keyLocks = new Map<string, Promise<void>>();

  constructor(options: AdminOptions) {
    this.options = options;
    this.store = options.store;
    this.checkContext = {
      registry: options.plugins,
      validateVars: options.validateVars,
      validateIp: options.validateIp,
      exists: async (type, id) => (await this.store.get(resourceKey(type, id))) !== undefined,
    };
  }

  async handle(req: IncomingMessage): Promise<Answer> {
    const url = new URL(req.url ?? "/", "http://admin");
    const method = (req.method ?? "GET").toUpperCase();
    if (!url.pathname.startsWith(PREFIX)) fail(404, "404 Route Not Found");

    const role = roleOf(this.options.keys, presentedKey(req, url.searchParams));
    if (role === undefined) fail(401, "failed to check token");
    if (role === "viewer" && method !== "GET") fail(401, "invalid method for role viewer");

    const parts = url.pathname
      .slice(PREFIX.length)
      .split("/")
      .filter((p) => p !== "")
      .map(decodeURIComponent);
    const [type, id, ...sub] = parts;
    if (type === undefined) fail(404, "404 Route Not Found");
    const body = method === "GET" || method === "DELETE" ? undefined : await readJson(req);

    if (type === "plugins") return this.plugins(method, id, url.searchParams);
    if (type === "schema") return this.schema(method, id, sub, body);
    if (type === "plugin_metadata") return this.pluginMetadata(method, id, body);
    const def = RESOURCES.get(type!);
    if (def === undefined) fail(404, "404 Route Not Found");

    switch (method) {
      case "GET":
        return id === undefined ? this.list(def!, url.searchParams) : this.getOne(def!, id);
      case "PUT":
        return this.put(def!, id, body);
      case "POST":
        if (id !== undefined) fail(405, `POST is not allowed on a single ${def!.name}; use PUT`);
        return this.post(def!, body);
      case "PATCH":
        if (id === undefined) fail(400, `missing ${def!.name} id`);
        return this.patch(def!, id!, sub, body);
      case "DELETE":
        if (id === undefined) fail(400, `missing ${def!.name} id`);
        return this.delete(def!, id!, url.searchParams.get("force") === "true");
      default:
        return fail(405, `method ${method} is not allowed`);
    }
  }

  // ---- reads --------------------------------------------------------------------------------------------

  private async getOne(def: ResourceDef, id: string): Promise<Answer> {
    const entry = await this.store.get(resourceKey(def.type, id));
    if (entry === undefined) return { status: 404, body: { message: "Key not found" } };
    return { status: 200, body: envelope(entry) };
  }

  private async list(def: ResourceDef, query: URLSearchParams): Promise<Answer> {
    const { entries } = await this.store.list(resourcePrefix(def.type));
    let items = entries.sort((a, b) => a.createRevision - b.createRevision);
    const name = query.get("name");
    const label = query.get("label");
    const uri = query.get("uri");
    if (name !== null) items = items.filter((e) => String((e.value as { name?: string }).name ?? "").includes(name));
    if (uri !== null) {
      items = items.filter((e) => {
        const v = e.value as { uri?: string; uris?: string[] };
        return (v.uri ?? "").includes(uri) || (v.uris ?? []).some((u) => u.includes(uri));
      });
    }
    if (label !== null) {
      const [lk, lv] = label.split(":");
      items = items.filter((e) => {
        const labels = (e.value as { labels?: Record<string, string> }).labels ?? {};
        return lk! in labels && (lv === undefined || labels[lk!] === lv);
      });
    }
    const total = items.length;
    const pageArg = query.get("page");
    const sizeArg = query.get("page_size");
    if (pageArg !== null || sizeArg !== null) {
      const page = Number(pageArg ?? 1);
      const size = Number(sizeArg ?? 10);
      if (!Number.isInteger(page) || page < 1) fail(400, 'invalid argument "page": must be an integer >= 1');
      if (!Number.isInteger(size) || size < 10 || size > 500) {
        fail(400, 'invalid argument "page_size": must be an integer between 10 and 500');
      }
      items = items.slice((page - 1) * size, page * size);
    }
    return { status: 200, body: { total, list: items.map(envelope) } };
  }

  // ---- writes -------------------------------------------------------------------------------------------

  private async put(def: ResourceDef, pathId: string | undefined, body: unknown): Promise<Answer> {
    const value = asObject(body);
    const bodyId = value[def.idField];
    let id = pathId;
    if (id === undefined) {
      if (bodyId === undefined) fail(400, `missing ${def.name} ${def.idField}`);
      id = String(bodyId);
    } else if (bodyId !== undefined && String(bodyId) !== id) {
      fail(400, `wrong ${def.name} ${def.idField}`);
    }
    checkId(def, id!);
    if (def.idField === "id") value.id = id;
    else value.username = id;
    const key = resourceKey(def.type, id!);
    const existing = await this.store.get(key);
    await this.validate(def, value, existing);
    const entry = await this.store.put(key, value);
    return { status: existing === undefined ? 201 : 200, body: envelope(entry) };
  }

  private async post(def: ResourceDef, body: unknown): Promise<Answer> {
    if (def.idField !== "id") fail(405, `POST is not supported for ${def.type}; use PUT`);
    const value = asObject(body);
    if (value.id !== undefined) fail(400, `wrong ${def.name} id, do not need it`);
    for (let attempt = 0; attempt < 10; attempt++) {
      const id = String(this.store.revision() + 1 + attempt).padStart(20, "0");
      value.id = id;
      await this.validate(def, value, undefined);
      try {
        const entry = await this.store.put(resourceKey(def.type, id), value, { prevRevision: 0 });
        return { status: 201, body: envelope(entry) };
      } catch (err) {
        if (!(err instanceof CompareFailedError)) throw err;
      }
    }
    return fail(500, "could not generate a unique id");
  }

  private patch(def: ResourceDef, id: string, sub: string[], body: unknown): Promise<Answer> {
    // PATCHes to one key from this process queue up; compare-and-swap below still guards against other
    // writers (another gateway on the same etcd).
    const key = resourceKey(def.type, id);
    const previous = this.keyLocks.get(key) ?? Promise.resolve();
    const run = previous.then(() => this.patchNow(def, id, key, sub, body));
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.keyLocks.set(key, settled);
    void settled.then(() => {
      if (this.keyLocks.get(key) === settled) this.keyLocks.delete(key);
    });
    return run;
  }

  private async patchNow(def: ResourceDef, id: string, key: string, sub: string[], body: unknown): Promise<Answer> {
    // Compare-and-swap so two concurrent PATCHes both land instead of one overwriting the other.
    for (let attempt = 0; attempt < 8; attempt++) {
      const existing = await this.store.get(key);
      if (existing === undefined) return { status: 404, body: { message: "Key not found" } };
      const current = existing.value as Record<string, unknown>;
      let next: Record<string, unknown>;
      if (sub.length > 0) {
        next = setAtPath(current, sub, structuredClone(body));
      } else {
        const patch = asObject(structuredClone(body));
        if (patch[def.idField] !== undefined && String(patch[def.idField]) !== id)
          fail(400, `wrong ${def.name} ${def.idField}`);
        next = mergePatch(current, patch) as Record<string, unknown>;
      }
      await this.validate(def, next, existing);
      try {
        const entry = await this.store.put(key, next, { prevRevision: existing.modRevision });
        return { status: 200, body: envelope(entry) };
      } catch (err) {
        if (!(err instanceof CompareFailedError)) throw err;
      }
    }
    return fail(409, `${def.name} ${id} is being changed concurrently; try again`);
  }

  private async delete(def: ResourceDef, id: string, force: boolean): Promise<Answer> {
    const key = resourceKey(def.type, id);
    const existing = await this.store.get(key);
    if (existing === undefined) return { status: 404, body: { message: "Key not found" } };
    if (!force) {
      for (const ref of REFERENCED_BY.get(def.type) ?? []) {
        const { entries } = await this.store.list(resourcePrefix(ref.from));
        const user = entries.find((e) => String((e.value as Record<string, unknown>)[ref.field] ?? "") === id);
        if (user !== undefined) {
          const userId = user.key.slice(user.key.lastIndexOf("/") + 1);
          fail(400, `can not delete this ${def.name}, ${ref.fromName} [${userId}] is still using it now`);
        }
      }
    }
    await this.store.delete(key);
    return { status: 200, body: { deleted: "1", key } };
  }

  /** Schema (with defaults filled in), then semantic checks, then timestamps. Throws 400 on any problem. */
  private async validate(def: ResourceDef, value: Record<string, unknown>, existing: StoreEntry | undefined) {
    delete value.create_time;
    delete value.update_time;
    const schemaErr = validateResource(def, value);
    if (schemaErr !== undefined) fail(400, schemaErr);
    const err = await def.check(value, this.checkContext);
    if (err !== undefined) fail(400, err);
    const now = Math.floor(Date.now() / 1000);
    const previous = existing?.value as { create_time?: number } | undefined;
    value.create_time = previous?.create_time ?? now;
    value.update_time = now;
  }

  // ---- plugins, schemas, metadata -----------------------------------------------------------------------

  private plugins(method: string, name: string | undefined, query: URLSearchParams): Answer {
    if (method !== "GET") fail(405, `method ${method} is not allowed`);
    const registry = this.options.plugins;
    if (name === "list") return { status: 200, body: [...this.options.enabledPlugins] };
    if (name === undefined) {
      if (query.get("all") !== "true") fail(400, "use /apisix/admin/plugins/list or ?all=true");
      const all: Record<string, unknown> = {};
      for (const p of registry.values()) all[p.name] = describePlugin(p);
      return { status: 200, body: all };
    }
    const plugin = registry.get(name);
    if (plugin === undefined) return { status: 404, body: { error_msg: `plugin not found: ${name}` } };
    const kind = query.get("schema_type");
    const schema =
      kind === "consumer" ? plugin.consumerSchema : kind === "metadata" ? plugin.metadataSchema : plugin.schema;
    if (schema === undefined) return { status: 404, body: { error_msg: `plugin ${name} has no ${kind} schema` } };
    return { status: 200, body: schema };
  }

  private schema(method: string, what: string | undefined, sub: string[], body: unknown): Answer {
    // POST /apisix/admin/schema/validate/{resource} (APISIX 3.x) checks a body without storing it.
    if (what === "validate") {
      if (method !== "POST") fail(405, "use POST to validate");
      const def = RESOURCES.get(sub[0] ?? "");
      if (def === undefined) return fail(404, `unknown resource type: ${sub[0] ?? ""}`);
      const err = validateResource(def, asObject(body));
      if (err !== undefined) fail(400, err);
      return { status: 200, body: {} };
    }
    if (method !== "GET") fail(405, `method ${method} is not allowed`);
    const def = RESOURCES.get(what ?? "");
    if (def === undefined) return { status: 404, body: { error_msg: `unknown resource type: ${what ?? ""}` } };
    return { status: 200, body: def.schema };
  }

  private async pluginMetadata(method: string, name: string | undefined, body: unknown): Promise<Answer> {
    const type: ResourceType = "plugin_metadata";
    if (name === undefined) {
      if (method !== "GET") fail(400, "missing plugin name");
      const { entries } = await this.store.list(resourcePrefix(type));
      return { status: 200, body: { total: entries.length, list: entries.map(envelope) } };
    }
    const key = resourceKey(type, name);
    if (method === "GET") {
      const entry = await this.store.get(key);
      return entry === undefined
        ? { status: 404, body: { message: "Key not found" } }
        : { status: 200, body: envelope(entry) };
    }
    if (method === "DELETE") {
      const removed = await this.store.delete(key);
      return removed === undefined
        ? { status: 404, body: { message: "Key not found" } }
        : { status: 200, body: { deleted: "1", key } };
    }
    if (method !== "PUT") fail(405, `method ${method} is not allowed`);
    const plugin = this.options.plugins.get(name);
    if (plugin === undefined) fail(400, `invalid plugin name: ${name}`);
    if (plugin!.metadataSchema === undefined) fail(400, `plugin ${name} has no metadata schema`);
    const value = asObject(body);
    const err = validateSchema(plugin!.metadataSchema!, value);
    if (err !== undefined) fail(400, `invalid configuration: ${err}`);
    const existing = await this.store.get(key);
    const entry = await this.store.put(key, value);
    return { status: existing === undefined ? 201 : 200, body: envelope(entry) };
  }
}

function describePlugin(p: Plugin): Record<string, unknown> {
  return {
    priority: p.priority,
    version: p.version ?? "0.1",
    schema: p.schema,
    ...(p.consumerSchema ? { consumer_schema: p.consumerSchema } : {}),
    ...(p.metadataSchema ? { metadata_schema: p.metadataSchema } : {}),
    ...(p.type ? { type: p.type } : {}),
  };
}

function envelope(entry: StoreEntry) {
  return {
    key: entry.key,
    value: entry.value,
    createdIndex: entry.createRevision,
    modifiedIndex: entry.modRevision,
  };
}

function checkId(def: ResourceDef, id: string): void {
  if (def.idField === "username") {
    if (!/^[a-zA-Z0-9_-]+$/.test(id) || id.length > 100) {
      fail(
        400,
        `invalid configuration: property "username" validation failed: failed to match pattern "^[a-zA-Z0-9_\\-]+$" with "${id}"`,
      );
    }
    return;
  }
  if (id.length > 64 || !ID_PATTERN.test(id)) {
    fail(
      400,
      `invalid configuration: property "id" validation failed: failed to match pattern "^[a-zA-Z0-9-_.]+$" with "${id}"`,
    );
  }
}

function asObject(body: unknown): Record<string, unknown> {
  if (body === undefined) fail(400, "invalid request body: empty body");
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    fail(400, "invalid request body: expected a JSON object");
  }
  return body as Record<string, unknown>;
}

/** The body is JSON whatever Content-Type says: curl -d sends form encoding and APISIX ignores it too. */
function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new AdminError(413, `request body larger than ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      if (text.trim() === "") return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch (err) {
        reject(new AdminError(400, `invalid request body: ${(err as Error).message}`));
      }
    });
    req.on("error", reject);
  });
}

import { resourceKey } from "../store/keys.js";
import { CompareFailedError, type StoreEntry } from "../store/types.js";
import { checkConf } from "./checks.js";
import type { AdminContext } from "./context.js";
import { type CredentialsEnv, deleteCredentials, duplicateKey } from "./credentials.js";
import { listAnswer } from "./list.js";
import { mergePatch, setAtPath } from "./patch.js";
import { deleteBlocker, listResources } from "./references.js";
import { type Answer, envelope, fail, KEY_NOT_FOUND } from "./reply.js";
import type { Method, ResourceDef } from "./resources.js";
import { revealedEnvelope } from "./secret-view.js";

/** Compare-and-swap attempts before a write gives up; in-process writers queue, so only other writers race. */
const CAS_ATTEMPTS = 5;

const now = () => Math.floor(Date.now() / 1000);
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** Runs writes to one key one at a time, so concurrent PATCHes from this process never race each other. */
class KeyQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, write: () => Promise<T>): Promise<T> {
    const result = (this.tails.get(key) ?? Promise.resolve()).then(write);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}

/**
 * GET/PUT/POST/PATCH/DELETE of the stored resources (APISIX's admin/resource.lua). Every write is checked
 * completely before anything is written, and writes use compare-and-swap, so a failed or concurrent write
 * never leaves a half-applied or lost config.
 */
export class ResourceApi {
  private readonly queue = new KeyQueue();

  constructor(private readonly env: CredentialsEnv) {}

  /** After checkConf: what only consumers need (unique identifying keys), then secrets encrypted for the store. */
  private async beforeWrite(def: ResourceDef, conf: Record<string, unknown>, id: string): Promise<void> {
    if (def.type === "consumers" && isObject(conf.plugins)) {
      const dup = await duplicateKey(this.env, conf.plugins, id, undefined);
      if (dup !== undefined) fail(400, dup);
    }
    this.env.secrets?.encrypt(conf.plugins);
  }

  handle(def: ResourceDef, ctx: AdminContext): Promise<Answer> {
    const method = ctx.method.toLowerCase() as Method;
    if (def.unsupported.includes(method)) fail(405, `not supported \`${ctx.method}\` method for ${def.kind}`);
    switch (method) {
      case "get":
        return this.get(def, ctx);
      case "put":
        return this.put(def, ctx);
      case "post":
        return this.post(def, ctx);
      case "patch":
        return this.patch(def, ctx);
      default:
        return this.delete(def, ctx);
    }
  }

  private async get(def: ResourceDef, ctx: AdminContext): Promise<Answer> {
    const reveal = (e: StoreEntry) => revealedEnvelope(e, ctx.role, this.env.secrets);
    if (ctx.id === undefined) {
      return {
        status: 200,
        body: listAnswer(await listResources(this.env.store, def.type), ctx.query, def.listFilterFields, reveal),
      };
    }
    const entry = await this.env.store.get(resourceKey(def.type, ctx.id));
    return entry === undefined ? KEY_NOT_FOUND : { status: 200, body: reveal(entry) };
  }

  private async put(def: ResourceDef, ctx: AdminContext): Promise<Answer> {
    const conf = ctx.body as Record<string, unknown>;
    const id = await checkConf(def, conf, this.env, { pathId: ctx.id, needId: true, allowTime: false });
    await this.beforeWrite(def, conf, id);
    const key = resourceKey(def.type, id);
    return this.queue.run(key, () =>
      this.swap(key, (existing) => {
        const previous = existing?.value as { create_time?: number } | undefined;
        conf.create_time = previous?.create_time ?? now();
        conf.update_time = now();
        return conf;
      }),
    );
  }

  private async post(def: ResourceDef, ctx: AdminContext): Promise<Answer> {
    const conf = ctx.body as Record<string, unknown>;
    const checkedId = await checkConf(def, conf, this.env, { pathId: ctx.id, needId: false, allowTime: false });
    await this.beforeWrite(def, conf, checkedId);
    conf.create_time = now();
    conf.update_time = now();
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      // APISIX uses an etcd revision, zero-padded to 20 digits; the store's next revision is the same idea.
      const id = String(this.env.store.revision() + 1).padStart(20, "0");
      conf.id = id;
      try {
        const entry = await this.env.store.put(resourceKey(def.type, id), conf, { prevRevision: 0 });
        return { status: 201, body: envelope(entry) };
      } catch (err) {
        if (!(err instanceof CompareFailedError)) throw err;
      }
    }
    return fail(503, "value changed before overwritten");
  }

  private patch(def: ResourceDef, ctx: AdminContext): Promise<Answer> {
    const id = ctx.id;
    if (id === undefined) fail(400, `missing ${def.kind} id`);
    const body = ctx.body;
    if (body === undefined) fail(400, "missing new configuration");
    const sub = ctx.subPath;
    if (sub.length === 0 && !isObject(body)) fail(400, "invalid configuration");
    const key = resourceKey(def.type, id!);
    return this.queue.run(key, () =>
      this.swap(
        key,
        async (existing) => {
          // Merged and checked in clear (as APISIX decrypts before a PATCH), then encrypted again.
          const current = structuredClone(existing!.value) as Record<string, unknown>;
          this.env.secrets?.decrypt(current.plugins);
          let next: Record<string, unknown>;
          if (sub.length > 0) {
            next = setAtPath(current, sub, structuredClone(body));
            next.create_time ??= now();
            next.update_time = now();
          } else {
            // Cloned first: checkConf fills defaults in place, and the stored value may be shared with readers.
            next = mergePatch(structuredClone(current), body) as Record<string, unknown>;
            next.create_time ??= now();
            // An explicit update_time in the PATCH body is kept, as APISIX does.
            if (next.update_time === undefined || (body as Record<string, unknown>).update_time === undefined) {
              next.update_time = now();
            }
          }
          await checkConf(def, next, this.env, { pathId: id, needId: true, allowTime: true });
          await this.beforeWrite(def, next, id!);
          return next;
        },
        true,
      ),
    );
  }

  /**
   * Reads the key, builds the new value from what is stored and writes it only if the key has not changed
   * meanwhile; on a lost race it rebuilds from the newer value. `mustExist` answers 404 for a missing key.
   */
  private async swap(
    key: string,
    build: (existing: StoreEntry | undefined) => Record<string, unknown> | Promise<Record<string, unknown>>,
    mustExist = false,
  ): Promise<Answer> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const existing = await this.env.store.get(key);
      if (existing === undefined && mustExist) return KEY_NOT_FOUND;
      const value = await build(existing);
      try {
        const entry = await this.env.store.put(key, value, { prevRevision: existing?.modRevision ?? 0 });
        return { status: existing === undefined ? 201 : 200, body: envelope(entry) };
      } catch (err) {
        if (!(err instanceof CompareFailedError)) throw err;
      }
    }
    return fail(503, "value changed before overwritten");
  }

  private async delete(def: ResourceDef, ctx: AdminContext): Promise<Answer> {
    const id = ctx.id;
    if (id === undefined) return fail(400, `missing ${def.kind} id`);
    const key = resourceKey(def.type, id);
    // APISIX runs the reference check first and so answers 400 for a missing key that something still names;
    // "Key not found" is the truer answer there.
    if ((await this.env.store.get(key)) === undefined) return KEY_NOT_FOUND;
    if (ctx.query.get("force") !== "true") {
      const blocker = await deleteBlocker(this.env.store, def.type, id);
      if (blocker !== undefined) fail(400, blocker);
    }
    // APISIX deletes a consumer's credentials with it.
    if (def.type === "consumers") await deleteCredentials(this.env.store, id);
    const removed = await this.queue.run(key, () => this.env.store.delete(key));
    return removed === undefined ? KEY_NOT_FOUND : { status: 200, body: { deleted: "1", key } };
  }
}

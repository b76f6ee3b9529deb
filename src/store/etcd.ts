import type { Pool } from "undici";
import type { StoreConfig } from "../config/types.js";
import { DEFAULT_PREFIX } from "./keys.js";
import {
  CompareFailedError,
  type ConfigStore,
  type DeleteOptions,
  type ListResult,
  type PutOptions,
  type StoreEntry,
  type WatchEvent,
  type Watcher,
  type WatchListener,
} from "./types.js";

/** `deployment.etcd` as loaded (hosts, prefix, timeout, credentials, TLS), and where to log skipped keys. */
export type EtcdStoreOptions = Omit<Extract<StoreConfig, { provider: "etcd" }>, "provider"> & {
  log?: (line: string) => void;
};

interface EtcdKv {
  key: string;
  value?: string;
  create_revision: string;
  mod_revision: string;
}

interface EtcdHeader {
  revision: string;
}

/** Raised when no etcd member could be reached or answered with an error. */
export class EtcdUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EtcdUnavailableError";
  }
}

const b64 = (s: string) => Buffer.from(s).toString("base64");
const unb64 = (s: string) => Buffer.from(s, "base64").toString();

/** etcd's range_end for "every key with this prefix": the prefix with its last byte incremented. */
function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix);
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 0xff) {
      bytes[i]!++;
      return bytes.subarray(0, i + 1).toString("base64");
    }
  }
  return b64("\0");
}

/**
 * The config store on etcd v3, as APISIX uses it: its key layout under `prefix`, JSON values, and etcd's
 * revisions as createdIndex/modifiedIndex, so an APISIX deployment's etcd and Weir nodes can share config.
 * Spoken over etcd's JSON gateway (the HTTP API APISIX's lua-resty-etcd uses) on pooled keep-alive
 * connections. Compare-and-swap writes are etcd transactions. A watch reconnects by itself from the last
 * revision it delivered, and when etcd has compacted that history it lists the prefix again and delivers
 * the difference, so watchers never see a gap.
 */
export class EtcdStore implements ConfigStore {
  /** Created in open(): undici's full API (request()) is loaded only when etcd is the store, ~10 MB of RSS. */
  private pools: Pool[] = [];
  private readonly prefix: string;
  private lastRevision = 0;
  private token: string | undefined;
  private readonly watchers = new Set<EtcdWatch>();
  private closed = false;

  constructor(private readonly options: EtcdStoreOptions) {
    this.prefix = options.prefix.replace(/\/+$/, "");
  }

  async open(): Promise<void> {
    const { Pool } = await import("undici");
    const { timeoutMs } = this.options;
    const tls = this.options.tls;
    const connect =
      tls === undefined
        ? undefined
        : { cert: tls.cert, key: tls.key, ca: tls.ca, rejectUnauthorized: tls.verify, servername: tls.sni };
    this.pools = this.options.hosts.map(
      (h) => new Pool(h, { connections: 8, connectTimeout: timeoutMs, keepAliveTimeout: 30_000, connect }),
    );
    if (this.options.user !== undefined) await this.authenticate();
    // Fails fast on a wrong address instead of at the first Admin API call.
    const res = await this.call<{ header: EtcdHeader }>("/v3/kv/range", { key: b64(this.etcdKey("/apisix/")) });
    this.seen(res.header);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.watchers) w.close();
    await Promise.all(this.pools.map((p) => p.close()));
  }

  revision(): number {
    return this.lastRevision;
  }

  /** Whether etcd answers a read now; refreshes revision(). Never throws. */
  async ping(): Promise<boolean> {
    try {
      // A key that does not exist: the cheapest read that still carries the revision (as APISIX's phantom key).
      const res = await this.call<{ header: EtcdHeader }>("/v3/kv/range", {
        key: b64(this.etcdKey("/apisix/phantomkey")),
      });
      this.seen(res.header);
      return true;
    } catch {
      return false;
    }
  }

  async get(key: string): Promise<StoreEntry | undefined> {
    const res = await this.call<{ header: EtcdHeader; kvs?: EtcdKv[] }>("/v3/kv/range", {
      key: b64(this.etcdKey(key)),
    });
    this.seen(res.header);
    const kv = res.kvs?.[0];
    return kv === undefined ? undefined : this.entry(kv);
  }

  async list(prefix: string): Promise<ListResult> {
    return this.listAt(prefix, undefined);
  }

  /** list() as of `revision` (etcd keeps history until it is compacted); the newest when undefined. */
  async listAt(prefix: string, revision: number | undefined): Promise<ListResult> {
    const key = this.etcdKey(prefix);
    const res = await this.call<{ header: EtcdHeader; kvs?: EtcdKv[] }>("/v3/kv/range", {
      key: b64(key),
      range_end: prefixEnd(key),
      sort_order: "ASCEND",
      sort_target: "KEY",
      ...(revision === undefined ? {} : { revision: String(revision) }),
    });
    this.seen(res.header);
    const entries: StoreEntry[] = [];
    for (const kv of res.kvs ?? []) {
      const entry = this.entryOrSkip(kv);
      if (entry !== undefined) entries.push(entry);
    }
    return { entries, revision: Number(res.header.revision) };
  }

  async put(key: string, value: unknown, options: PutOptions = {}): Promise<StoreEntry> {
    const k = b64(this.etcdKey(key));
    const put = { request_put: { key: k, value: b64(JSON.stringify(value)) } };
    const readBack = { request_range: { key: k } };
    if (options.prevRevision === undefined) {
      const res = await this.txn([], [put, readBack], []);
      return this.entry(res.responses[1]!.response_range!.kvs![0]!);
    }
    const res = await this.txn([this.compare(k, options.prevRevision)], [put, readBack], [readBack]);
    if (res.succeeded !== true) throw this.compareFailed(key, res);
    return this.entry(res.responses[1]!.response_range!.kvs![0]!);
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<StoreEntry | undefined> {
    const k = b64(this.etcdKey(key));
    const del = { request_delete_range: { key: k, prev_kv: true } };
    const compares = options.prevRevision === undefined ? [] : [this.compare(k, options.prevRevision)];
    const res = await this.txn(compares, [del], [{ request_range: { key: k } }]);
    if (res.succeeded !== true) throw this.compareFailed(key, res);
    const prev = res.responses[0]?.response_delete_range?.prev_kvs?.[0];
    return prev === undefined ? undefined : this.entry(prev);
  }

  watch(prefix: string, fromRevision: number, listener: WatchListener): Watcher {
    const w = new EtcdWatch(this, this.etcdKey(prefix), prefix, fromRevision, listener);
    this.watchers.add(w);
    w.start();
    return {
      close: () => {
        w.close();
        this.watchers.delete(w);
      },
    };
  }

  // ---- shared with EtcdWatch ----------------------------------------------------------------------------

  /** The Weir key (always under `/apisix`) for an etcd key under the configured prefix. */
  weirKey(etcdKey: string): string | undefined {
    if (!etcdKey.startsWith(`${this.prefix}/`)) return undefined;
    return DEFAULT_PREFIX + etcdKey.slice(this.prefix.length);
  }

  etcdKey(weirKey: string): string {
    return weirKey.startsWith(DEFAULT_PREFIX) ? this.prefix + weirKey.slice(DEFAULT_PREFIX.length) : weirKey;
  }

  entryOrSkip(kv: EtcdKv): StoreEntry | undefined {
    try {
      return this.entry(kv);
    } catch (err) {
      // Something not JSON in the prefix (another tool's key): not config, and not fatal.
      this.options.log?.(`etcd: skipping ${unb64(kv.key)}: ${(err as Error).message}`);
      return undefined;
    }
  }

  seen(header: EtcdHeader | undefined): void {
    const rev = Number(header?.revision ?? 0);
    if (rev > this.lastRevision) this.lastRevision = rev;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Which member watch streams go to; moves on when a stream cannot be opened there. */
  private streamMember = 0;

  /** One streaming POST /v3/watch; resolves when the stream ends. */
  async stream(body: unknown, onLine: (line: string) => void, signal: AbortSignal): Promise<void> {
    const pool = this.pools[this.streamMember % this.pools.length]!;
    let res: Awaited<ReturnType<Pool["request"]>>;
    try {
      res = await pool.request({
        path: "/v3/watch",
        method: "POST",
        headers: this.headers(),
        body: JSON.stringify(body),
        signal,
        bodyTimeout: 0,
        headersTimeout: this.options.timeoutMs,
      });
    } catch (err) {
      this.streamMember++;
      throw err;
    }
    if (res.statusCode !== 200) {
      const text = await res.body.text();
      // Simple tokens expire (5 min by default): the next attempt must come with a fresh one.
      if (this.tokenExpired(text)) await this.authenticate().catch(() => {});
      throw new EtcdUnavailableError(`etcd watch answered ${res.statusCode}: ${text}`);
    }
    let buffered = "";
    // A UTF-8 character split between two chunks must not be decoded in halves.
    const decoder = new TextDecoder();
    for await (const chunk of res.body) {
      buffered += decoder.decode(chunk as Uint8Array, { stream: true });
      let nl = buffered.indexOf("\n");
      while (nl !== -1) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line !== "") onLine(line);
        nl = buffered.indexOf("\n");
      }
    }
    if (buffered.trim() !== "") onLine(buffered.trim());
  }

  entry(kv: EtcdKv): StoreEntry {
    const key = this.weirKey(unb64(kv.key)) ?? unb64(kv.key);
    return {
      key,
      value: JSON.parse(unb64(kv.value ?? "")),
      createRevision: Number(kv.create_revision),
      modRevision: Number(kv.mod_revision),
    };
  }

  // ---- requests -----------------------------------------------------------------------------------------

  private compare(key: string, prevRevision: number) {
    // 0: "only if the key does not exist", which etcd says as create_revision == 0.
    return prevRevision === 0
      ? { key, target: "CREATE", result: "EQUAL", create_revision: "0" }
      : { key, target: "MOD", result: "EQUAL", mod_revision: String(prevRevision) };
  }

  private compareFailed(key: string, res: TxnResponse): CompareFailedError {
    const kv = res.responses[0]?.response_range?.kvs?.[0];
    return new CompareFailedError(key, kv === undefined ? 0 : Number(kv.mod_revision));
  }

  private async txn(compare: unknown[], success: unknown[], failure: unknown[]): Promise<TxnResponse> {
    const res = await this.call<TxnResponse>("/v3/kv/txn", { compare, success, failure });
    this.seen(res.header);
    res.responses ??= [];
    return res;
  }

  private headers(): Record<string, string> {
    const h: Record<string, string> = { "content-type": "application/json" };
    if (this.token !== undefined) h.authorization = this.token;
    return h;
  }

  private tokenExpired(answer: string): boolean {
    return this.options.user !== undefined && answer.includes("invalid auth token");
  }

  private async authenticate(): Promise<void> {
    // etcd refuses even the authenticate call when it carries the expired token.
    this.token = undefined;
    const res = await this.call<{ token: string }>(
      "/v3/auth/authenticate",
      { name: this.options.user, password: this.options.password ?? "" },
      false,
    );
    this.token = res.token;
  }

  /** POSTs to the first member that answers; retries once after re-authenticating on an expired token. */
  async call<T>(path: string, body: unknown, mayReauth = true): Promise<T> {
    let lastError: unknown;
    for (const pool of this.pools) {
      let res: Awaited<ReturnType<Pool["request"]>>;
      try {
        res = await pool.request({
          path,
          method: "POST",
          headers: this.headers(),
          body: JSON.stringify(body),
          headersTimeout: this.options.timeoutMs,
          bodyTimeout: this.options.timeoutMs,
        });
      } catch (err) {
        lastError = err;
        continue;
      }
      const text = await res.body.text();
      if (res.statusCode === 200) return JSON.parse(text) as T;
      if (mayReauth && this.tokenExpired(text)) {
        await this.authenticate();
        return this.call(path, body, false);
      }
      throw new EtcdUnavailableError(`etcd ${path} answered ${res.statusCode}: ${text.slice(0, 200)}`);
    }
    throw new EtcdUnavailableError(`etcd unreachable (${this.options.hosts.join(", ")}): ${String(lastError)}`);
  }
}

interface TxnResponse {
  header: EtcdHeader;
  succeeded?: boolean;
  responses: {
    response_range?: { kvs?: EtcdKv[] };
    response_delete_range?: { prev_kvs?: EtcdKv[] };
  }[];
}

/**
 * One watch on a prefix that keeps itself alive: each stream starts at the revision after the last one
 * delivered; a dropped stream is re-opened after a back-off; compacted history is replaced by a fresh
 * listing compared with what the watcher was last told.
 */
class EtcdWatch {
  private next: number;
  private abort = new AbortController();
  private stopped = false;
  /** What the listener currently believes exists, for the diff after a compaction. */
  private readonly known = new Map<string, StoreEntry>();
  private backoffMs = 100;

  constructor(
    private readonly store: EtcdStore,
    private readonly etcdPrefix: string,
    private readonly weirPrefix: string,
    fromRevision: number,
    private readonly listener: WatchListener,
  ) {
    this.next = fromRevision;
  }

  start(): void {
    void this.run();
  }

  close(): void {
    this.stopped = true;
    this.abort.abort();
  }

  private async run(): Promise<void> {
    // What the listener knows: the prefix as of the revision before the first event it asked for, so
    // that after a compaction the keys deleted meanwhile can be told to it.
    try {
      const { entries } = await this.store.listAt(this.weirPrefix, this.next > 1 ? this.next - 1 : undefined);
      for (const e of entries) this.known.set(e.key, e);
    } catch {
      // That history is gone already: the newest listing, minus what the stream will deliver anyway.
      try {
        const { entries } = await this.store.list(this.weirPrefix);
        for (const e of entries) if (e.modRevision < this.next) this.known.set(e.key, e);
      } catch {
        // etcd is down; the stream's retries wait for it.
      }
    }
    while (!this.stopped && !this.store.isClosed) {
      let compacted = false;
      try {
        await this.store.stream(
          {
            create_request: {
              key: b64(this.etcdPrefix),
              range_end: prefixEnd(this.etcdPrefix),
              start_revision: String(this.next),
            },
          },
          (line) => {
            if (this.onLine(line) === "compacted") {
              compacted = true;
              this.abort.abort();
            }
          },
          this.abort.signal,
        );
      } catch {
        // dropped, refused or aborted: decided below
      }
      if (this.stopped || this.store.isClosed) return;
      this.abort = new AbortController();
      if (compacted) {
        await this.resync();
        continue;
      }
      await new Promise((r) => setTimeout(r, this.backoffMs));
      this.backoffMs = Math.min(this.backoffMs * 2, 2_000);
    }
  }

  private onLine(line: string): "compacted" | undefined {
    let msg: {
      result?: {
        header?: EtcdHeader;
        events?: { type?: string; kv: EtcdKv; prev_kv?: EtcdKv }[];
        compact_revision?: string;
        canceled?: boolean;
      };
    };
    try {
      msg = JSON.parse(line);
    } catch {
      return undefined;
    }
    const result = msg.result;
    if (result === undefined) return undefined;
    this.backoffMs = 100;
    if (result.compact_revision !== undefined && Number(result.compact_revision) > 0) return "compacted";
    this.store.seen(result.header);
    const out: WatchEvent[] = [];
    for (const ev of result.events ?? []) {
      const revision = Number(ev.kv.mod_revision);
      if (ev.type === "DELETE") {
        const key = this.store.weirKey(unb64(ev.kv.key));
        if (key === undefined) continue;
        const entry = this.known.get(key) ?? { key, value: undefined, createRevision: 0, modRevision: revision };
        this.known.delete(key);
        out.push({ type: "delete", key, entry, revision });
      } else {
        const entry = this.store.entryOrSkip(ev.kv);
        if (entry === undefined) continue;
        this.known.set(entry.key, entry);
        out.push({ type: "put", key: entry.key, value: entry.value, entry, revision });
      }
      if (revision >= this.next) this.next = revision + 1;
    }
    if (out.length > 0) this.listener(out);
    return undefined;
  }

  /** After a compaction: the current listing, told to the listener as the puts and deletes it missed. */
  private async resync(): Promise<void> {
    let listing: ListResult;
    try {
      listing = await this.store.list(this.weirPrefix);
    } catch {
      await new Promise((r) => setTimeout(r, this.backoffMs));
      return;
    }
    const out: WatchEvent[] = [];
    const present = new Set<string>();
    for (const e of listing.entries) {
      present.add(e.key);
      if (this.known.get(e.key)?.modRevision !== e.modRevision)
        out.push({ type: "put", key: e.key, value: e.value, entry: e, revision: e.modRevision });
      this.known.set(e.key, e);
    }
    for (const [key, entry] of this.known) {
      if (present.has(key)) continue;
      this.known.delete(key);
      out.push({ type: "delete", key, entry, revision: listing.revision });
    }
    this.next = listing.revision + 1;
    if (out.length > 0) this.listener(out);
  }
}

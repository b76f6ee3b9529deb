import { join } from "node:path";
import type { StoreConfig } from "../config/types.js";
import { EmbeddedStore } from "./embedded.js";
import { EtcdStore } from "./etcd.js";
import type { ConfigStore } from "./types.js";

export { EmbeddedStore, type EmbeddedStoreOptions } from "./embedded.js";
export { EtcdStore, type EtcdStoreOptions } from "./etcd.js";
export { CorruptFileError } from "./frame.js";
export { DataDirInUseError } from "./lock.js";
export { MemoryStore } from "./memory.js";

/** The store config.yaml asks for. The caller opens it (open() recovers a durable store from disk). */
export function createStore(config: StoreConfig, dataDir: string): ConfigStore {
  switch (config.provider) {
    case "embedded":
      return new EmbeddedStore({ dir: join(dataDir, "store") });
    case "etcd":
      return new EtcdStore(config);
  }
}

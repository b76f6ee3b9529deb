/**
 * The gateway's runtime configuration after conf/config.yaml is loaded, environment overrides applied and
 * defaults filled. The YAML file's own shape (APISIX-like) lives in config/load.ts; everything downstream
 * of the loader reads only this normalized form.
 */
export interface ListenAddress {
  host: string;
  port: number;
}

export type AdminRole = "admin" | "viewer";

export interface AdminKey {
  name: string;
  key: string;
  role: AdminRole;
}

export type StoreConfig =
  | { provider: "embedded" }
  | {
      provider: "etcd";
      /** `http://host:port` (or https) of each member; requests go to the first that answers. */
      hosts: string[];
      /** The etcd key prefix that stands for APISIX's `/apisix`. */
      prefix: string;
      timeoutMs: number;
      user?: string;
      password?: string;
      /** https members: PEM contents read from the files config.yaml names. */
      tls?: EtcdTls;
    };

export interface EtcdTls {
  /** Client certificate and key for etcd's --client-cert-auth. */
  cert?: string;
  key?: string;
  /** CA that signed etcd's certificate (else the system's). */
  ca?: string;
  /** Verify etcd's certificate (APISIX's `tls.verify`, default true). */
  verify: boolean;
  sni?: string;
}

export interface WeirConfig {
  /** Where the embedded store, the generated admin key and other state live. */
  dataDir: string;
  proxy: {
    listen: ListenAddress[];
  };
  admin: {
    enabled: boolean;
    listen: ListenAddress;
    keys: AdminKey[];
    /** CIDRs allowed to reach the Admin API (APISIX `allow_admin`); empty = allow all. */
    allow: string[];
  };
  /** APISIX's Control API (health checks, running routes/upstreams); loopback by default. */
  control: {
    enabled: boolean;
    listen: ListenAddress;
  };
  /** APISIX's `plugin_attr.prometheus`: the metrics export server. */
  metrics: {
    enabled: boolean;
    listen: ListenAddress;
    /** Path the metrics are served at. */
    uri: string;
    /** Put before every metric name. */
    prefix: string;
  };
  store: StoreConfig;
  /** Names of enabled plugins; a route naming another plugin is rejected by the Admin API. */
  plugins: string[];
  accessLog: {
    /** File path, "stdout", or null for off. */
    path: string | null;
  };
  /** How long SIGTERM waits for in-flight requests before closing them. */
  shutdownTimeoutMs: number;
  /**
   * APISIX's `data_encryption`: plugin fields listed in `encryptFields` are stored encrypted. Absent means
   * enabled with a key generated into dataDir.
   */
  dataEncryption?: {
    enabled: boolean;
    /** First entry encrypts, all decrypt; empty = the generated key. */
    keyring: string[];
  };
}

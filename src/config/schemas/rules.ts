import { isIPv6 } from "node:net";

/**
 * The checks APISIX's Admin API runs beside the JSON schema (routes.lua check_conf, upstream.lua
 * check_upstream_conf), plus the fields Weir refuses outright. None of them needs the store: references and
 * plugin configs are checked by the Admin API itself. Messages are APISIX's where APISIX has one that names
 * the field.
 */
type Conf = Record<string, unknown>;

const isObject = (v: unknown): v is Conf => v !== null && typeof v === "object" && !Array.isArray(v);
const at = (where: string, field: string) => (where === "" ? field : `${where}.${field}`);

/** Run on the raw body before the schema, so the pair rules get messages that name both fields. */
export function precheckRoute(conf: Conf): string | undefined {
  if (conf.host !== undefined && conf.hosts !== undefined) return "only one of host or hosts is allowed";
  if (conf.remote_addr !== undefined && conf.remote_addrs !== undefined) {
    return "only one of remote_addr or remote_addrs is allowed";
  }
  // APISIX leaves these two to the schema, whose message ("allOf 1 failed: value should match only one
  // schema, but matches none") names neither field.
  if (conf.uri !== undefined && conf.uris !== undefined) return "only one of uri or uris is allowed";
  if (conf.uri === undefined && conf.uris === undefined) {
    return 'invalid configuration: property "uri" is required when "uris" is not set';
  }
  return precheckUpstream(conf.upstream, "upstream");
}

export function precheckService(conf: Conf): string | undefined {
  return precheckUpstream(conf.upstream, "upstream");
}

/** `where` is the path of an inline upstream ("upstream"), or "" for an upstream resource. */
export function precheckUpstream(up: unknown, where: string): string | undefined {
  if (!isObject(up)) return undefined;
  // Deliberately unsupported for now (docs/apisix-compatibility.md): refuse rather than accept and ignore.
  if (up.service_name !== undefined || up.discovery_type !== undefined) {
    return `property "${at(where, "service_name")}": service discovery is not supported by Weir yet; list the nodes instead`;
  }
  // The schema's oneOf (nodes, or service_name + discovery_type) would only say "matches none".
  if (up.nodes === undefined) return `invalid configuration: property "${at(where, "nodes")}" is required`;
  return undefined;
}

/** Lua is not run by Weir, so fields that carry Lua code are refused instead of silently ignored. */
export function refuseLua(conf: Conf): string | undefined {
  if (conf.filter_func !== undefined) return 'property "filter_func" is not supported: Weir does not run Lua';
  if (conf.script !== undefined) return 'property "script" is not supported: Weir does not run Lua';
  if (conf.script_id !== undefined) return 'property "script_id" is not supported: Weir does not run Lua';
  return undefined;
}

const HASH_KEY_PATTERNS: Record<string, RegExp | undefined> = {
  vars: /^((uri|server_name|server_addr|request_uri|remote_port|remote_addr|query_string|host|hostname|mqtt_client_id)|arg_[0-9a-zA-z_-]+)$/,
  header: /^[a-zA-Z0-9-_]+$/,
  cookie: /^[a-zA-Z0-9-_]+$/,
};

/** APISIX's check_upstream_conf after the schema passed (types are known to be right here). */
export function checkUpstreamConf(up: Conf, where: string): string | undefined {
  const nodes = up.nodes;
  if (Array.isArray(nodes)) {
    for (const [i, node] of nodes.entries()) {
      const host = (node as { host: string }).host;
      if (isIPv6(host)) {
        return `invalid configuration: property "${at(where, `nodes[${i}].host`)}" validation failed: IPv6 address must be enclosed with '[' and ']'`;
      }
    }
  } else if (isObject(nodes)) {
    for (const addr of Object.keys(nodes)) {
      const port = portOf(addr);
      if (port !== undefined && (port < 1 || port > 65535)) {
        return `invalid configuration: property "${at(where, "nodes")}" validation failed: invalid port ${port}`;
      }
    }
  }

  const scheme = up.scheme;
  if (scheme === "grpc" || scheme === "grpcs") {
    return `property "${at(where, "scheme")}": gRPC upstreams are not supported by Weir yet`;
  }
  if (scheme !== undefined && scheme !== "http" && scheme !== "https") {
    return `property "${at(where, "scheme")}": ${String(scheme)} upstreams are for APISIX's stream proxy, which Weir does not have`;
  }

  const tls = up.tls as { client_cert?: string; client_key?: string; client_cert_id?: unknown } | undefined;
  if (tls?.client_cert_id !== undefined) {
    return `property "${at(where, "tls.client_cert_id")}": SSL objects are not supported yet; use tls.client_cert and tls.client_key`;
  }
  if ((tls?.client_cert === undefined) !== (tls?.client_key === undefined)) {
    return `property "${at(where, "tls")}": client_cert and client_key go together`;
  }

  if (up.pass_host === "rewrite" && (up.upstream_host === undefined || up.upstream_host === "")) {
    return "`upstream_host` can't be empty when `pass_host` is `rewrite`";
  }

  if (up.type !== "chash") return undefined;
  const hashOn = String(up.hash_on ?? "vars");
  if (hashOn !== "consumer" && up.key === undefined) return "missing key";
  const pattern = HASH_KEY_PATTERNS[hashOn];
  if (pattern !== undefined && !pattern.test(String(up.key))) {
    return `invalid configuration: property "${at(where, "key")}" validation failed: failed to match pattern "${pattern.source}" with ${JSON.stringify(up.key)}`;
  }
  return undefined;
}

/** The port of a `host:port` / `[v6]:port` node key, or undefined when it has none. */
function portOf(addr: string): number | undefined {
  if (addr.startsWith("[")) {
    const close = addr.indexOf("]");
    if (close === -1 || addr[close + 1] !== ":") return undefined;
    return Number(addr.slice(close + 2));
  }
  const colon = addr.lastIndexOf(":");
  if (colon === -1 || addr.indexOf(":") !== colon) return undefined;
  const port = Number(addr.slice(colon + 1));
  return Number.isFinite(port) ? port : undefined;
}

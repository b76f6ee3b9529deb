/**
 * Header rules of a proxy (RFC 9110 §7.6.1): hop-by-hop headers never cross the gateway, and the gateway
 * owns the forwarding headers. Checks go by length first so the common header costs one switch and no
 * lower-casing.
 */

/** Request headers the proxy drops or sets itself; matched case-insensitively. */
export function isManagedRequestHeader(name: string): boolean {
  switch (name.length) {
    case 2:
      return name.toLowerCase() === "te";
    case 4:
      return name.toLowerCase() === "host";
    case 6:
      // undici refuses `expect`; node's server already answered any 100-continue.
      return name.toLowerCase() === "expect";
    case 7: {
      const n = name.toLowerCase();
      return n === "upgrade" || n === "trailer";
    }
    case 9:
      return name.toLowerCase() === "x-real-ip";
    case 10: {
      const n = name.toLowerCase();
      return n === "connection" || n === "keep-alive";
    }
    case 15:
      return name.toLowerCase() === "x-forwarded-for";
    case 16: {
      const n = name.toLowerCase();
      return n === "x-forwarded-host" || n === "x-forwarded-port" || n === "proxy-connection";
    }
    case 17: {
      const n = name.toLowerCase();
      return n === "transfer-encoding" || n === "x-forwarded-proto";
    }
    case 19: {
      const n = name.toLowerCase();
      return n === "proxy-authorization" || n === "x-consumer-username";
    }
    // The consumer headers are the gateway's word on who authenticated; a client's copies are spoofs.
    case 20:
      return name.toLowerCase() === "x-consumer-custom-id";
    case 23:
      return name.toLowerCase() === "x-credential-identifier";
    default:
      return false;
  }
}

/** Response headers that must not be relayed to the client as they are. */
export function isHopByHopResponseHeader(name: string): boolean {
  switch (name.length) {
    case 7:
      return name.toLowerCase() === "trailer" || name.toLowerCase() === "upgrade";
    case 10: {
      const n = name.toLowerCase();
      return n === "connection" || n === "keep-alive";
    }
    case 16:
      return name.toLowerCase() === "proxy-connection";
    case 17:
      return name.toLowerCase() === "transfer-encoding";
    case 18:
      return name.toLowerCase() === "proxy-authenticate";
    default:
      return false;
  }
}

/** Names listed in a `Connection: a, b` header are hop-by-hop too. Returns lowercase names, or undefined. */
export function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  let tokens: Set<string> | undefined;
  for (const raw of value.split(",")) {
    const t = raw.trim().toLowerCase();
    if (t === "" || t === "close" || t === "keep-alive") continue;
    tokens ??= new Set();
    tokens.add(t);
  }
  return tokens;
}

/** An upstream answer's header lines as relayed to the client: no hop-by-hop fields, no upstream Server. */
export function relayedResponseHeaders(lines: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < lines.length; i += 2) {
    const name = lines[i]!;
    if (isHopByHopResponseHeader(name)) continue;
    if (name.length === 6 && name.toLowerCase() === "server") continue;
    out.push(name, lines[i + 1]!);
  }
  return out;
}

/**
 * How the request's raw fields become the values of `$uri`, `$host` and `$remote_addr`. Computed once per
 * request by the context (the router matches on them) and read by the variable table.
 */

/** Strips the IPv4-mapped IPv6 prefix so `::ffff:127.0.0.1` reads as APISIX's `127.0.0.1`. */
export function normalizeAddress(address: string | undefined): string {
  if (address === undefined) return "";
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

/**
 * nginx's `$host` from the Host header: without the port, lower-cased; an IPv6 literal keeps its brackets
 * (`[::1]:8080` → `[::1]`), as nginx's ngx_http_validate_host keeps it. No Host header: "".
 */
export function hostWithoutPort(host: string | undefined): string {
  if (host === undefined || host === "") return "";
  if (host.charCodeAt(0) === 91 /* [ */) {
    const end = host.indexOf("]");
    return (end === -1 ? host : host.slice(0, end + 1)).toLowerCase();
  }
  const colon = host.indexOf(":");
  return (colon === -1 ? host : host.slice(0, colon)).toLowerCase();
}

/**
 * nginx's `$uri`: percent-decoded, `.`/`..` segments resolved, repeated slashes merged. Routing on the
 * normalized path is what stops `/public/../admin` or `/adm%69n` from slipping past a route's rules; the
 * upstream still receives the request URI as the client sent it. Plain paths skip all work.
 */
export function normalizePath(raw: string): string {
  let needs = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37 /* % */ || (c === 47 /* / */ && (raw.charCodeAt(i + 1) === 47 || raw.charCodeAt(i + 1) === 46))) {
      needs = true;
      break;
    }
  }
  if (!needs) return raw;
  let decoded = raw;
  if (raw.includes("%")) {
    try {
      decoded = decodeURIComponent(raw);
    } catch {
      decoded = raw; // invalid escapes are matched as sent
    }
  }
  const out: string[] = [];
  for (const seg of decoded.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") out.pop();
    else out.push(seg);
  }
  const trailing = decoded.endsWith("/") || decoded.endsWith("/.") || decoded.endsWith("/..");
  const joined = `/${out.join("/")}`;
  return trailing && joined !== "/" ? `${joined}/` : joined;
}

/**
 * IP and CIDR matching for `remote_addrs`, `ipmatch` and (later) ip-restriction. Rules are parsed once into
 * integers (IPv4) or bigints (IPv6); each lookup parses only the client address.
 */
interface V4Rule {
  net: number;
  mask: number;
}
interface V6Rule {
  net: bigint;
  mask: bigint;
}

const V6_ALL = (1n << 128n) - 1n;

export function parseIpv4(ip: string): number | undefined {
  const parts = ip.split(".");
  if (parts.length !== 4) return undefined;
  let out = 0;
  for (const p of parts) {
    if (p === "" || p.length > 3 || !/^\d+$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out = out * 256 + n;
  }
  return out >>> 0;
}

export function parseIpv6(ip: string): bigint | undefined {
  if (ip.startsWith("[") && ip.endsWith("]")) ip = ip.slice(1, -1);
  const zone = ip.indexOf("%");
  if (zone !== -1) ip = ip.slice(0, zone);
  if (!ip.includes(":")) return undefined;
  let tail: number[] = [];
  const lastColon = ip.lastIndexOf(":");
  const maybeV4 = ip.slice(lastColon + 1);
  if (maybeV4.includes(".")) {
    const v4 = parseIpv4(maybeV4);
    if (v4 === undefined) return undefined;
    tail = [v4 >>> 16, v4 & 0xffff];
    ip = `${ip.slice(0, lastColon + 1)}${tail.length ? "0:0" : ""}`;
  }
  const halves = ip.split("::");
  if (halves.length > 2) return undefined;
  const parse = (s: string): number[] | undefined => {
    if (s === "") return [];
    const groups: number[] = [];
    for (const g of s.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      groups.push(Number.parseInt(g, 16));
    }
    return groups;
  };
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  if (head === undefined || rest === undefined) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const missing = 8 - head.length - rest.length;
    if (missing < 1) return undefined;
    groups = [...head, ...new Array<number>(missing).fill(0), ...rest];
  } else groups = head;
  if (groups.length !== 8) return undefined;
  if (tail.length) {
    groups[6] = tail[0]!;
    groups[7] = tail[1]!;
  }
  let out = 0n;
  for (const g of groups) out = (out << 16n) | BigInt(g);
  return out;
}

/** `::ffff:a.b.c.d` is the IPv4 address a.b.c.d for matching purposes. */
function mappedV4(v6: bigint): number | undefined {
  return v6 >> 32n === 0xffffn ? Number(v6 & 0xffffffffn) : undefined;
}

export function validateIp(entry: string): string | undefined {
  return parseRule(entry) === undefined ? `invalid ip address or CIDR: ${entry}` : undefined;
}

function parseRule(entry: string): { v4?: V4Rule; v6?: V6Rule } | undefined {
  const slash = entry.indexOf("/");
  const addr = slash === -1 ? entry : entry.slice(0, slash);
  const bitsText = slash === -1 ? undefined : entry.slice(slash + 1);
  if (bitsText !== undefined && !/^\d{1,3}$/.test(bitsText)) return undefined;
  const v4 = parseIpv4(addr);
  if (v4 !== undefined) {
    const bits = bitsText === undefined ? 32 : Number(bitsText);
    if (bits > 32) return undefined;
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    return { v4: { net: (v4 & mask) >>> 0, mask } };
  }
  const v6 = parseIpv6(addr);
  if (v6 === undefined) return undefined;
  const bits = bitsText === undefined ? 128 : Number(bitsText);
  if (bits > 128) return undefined;
  const mask = bits === 0 ? 0n : (V6_ALL << BigInt(128 - bits)) & V6_ALL;
  const mapped = mappedV4(v6);
  if (mapped !== undefined && bits >= 96) {
    const b4 = bits - 96;
    const m4 = b4 === 0 ? 0 : (0xffffffff << (32 - b4)) >>> 0;
    return { v4: { net: (mapped & m4) >>> 0, mask: m4 } };
  }
  return { v6: { net: v6 & mask, mask } };
}

/** Throws on an invalid entry (the Admin API validates first with validateIp). */
export function compileIpMatcher(list: readonly string[]): (ip: string) => boolean {
  const v4: V4Rule[] = [];
  const v6: V6Rule[] = [];
  for (const entry of list) {
    const rule = parseRule(entry);
    if (rule === undefined) throw new Error(`invalid ip address or CIDR: ${entry}`);
    if (rule.v4) v4.push(rule.v4);
    if (rule.v6) v6.push(rule.v6);
  }
  return (ip: string): boolean => {
    let a4 = ip.includes(":") ? undefined : parseIpv4(ip);
    if (a4 === undefined && ip.includes(":")) {
      const a6 = parseIpv6(ip);
      if (a6 === undefined) return false;
      a4 = mappedV4(a6);
      if (a4 === undefined) {
        for (const r of v6) if ((a6 & r.mask) === r.net) return true;
        return false;
      }
    }
    if (a4 === undefined) return false;
    for (const r of v4) if ((a4 & r.mask) >>> 0 === r.net) return true;
    return false;
  };
}

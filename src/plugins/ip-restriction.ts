import { type Static, Type } from "@sinclair/typebox";
import { IP_DEF } from "../config/schemas/common.js";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, Reply } from "../plugin-api/plugin.js";
import { compileIpMatcher, validateIp } from "../router/ip.js";

/**
 * ip-restriction: allows only a whitelist of client addresses, or refuses a blacklist of them (IPv4, IPv6,
 * CIDRs). The client is `remote_addr`, so a real-ip plugin that ran before decides who that is. Lists are
 * parsed once into integer masks; a request parses only its own address.
 */
export const name = "ip-restriction";
export const priority = 3000;

const IpList = Type.Array(Type.Unsafe<string>({ anyOf: IP_DEF }), { minItems: 1 });

export const schema = Type.Object(
  {
    message: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, default: "Your IP address is not allowed" })),
    response_code: Type.Optional(Type.Integer({ minimum: 403, maximum: 404, default: 403 })),
    whitelist: Type.Optional(IpList),
    blacklist: Type.Optional(IpList),
  },
  { oneOf: [{ required: ["whitelist"] }, { required: ["blacklist"] }] },
);
export type IpRestrictionConfig = Static<typeof schema>;

interface State {
  matches: (ip: string) => boolean;
  /** true: a match lets the request through (whitelist); false: a match refuses it (blacklist). */
  allowOnMatch: boolean;
  rejection: Reply;
}

/** The schema's ip_def patterns let some malformed IPv6 through (APISIX says so too); the parser does not. */
function check(conf: IpRestrictionConfig): string | undefined {
  for (const entry of conf.whitelist ?? conf.blacklist ?? []) {
    if (validateIp(entry) !== undefined) return `invalid ip address: ${entry}`;
  }
  return undefined;
}

function compile(conf: IpRestrictionConfig): State {
  const allowOnMatch = conf.whitelist !== undefined;
  return {
    matches: compileIpMatcher((allowOnMatch ? conf.whitelist : conf.blacklist) ?? []),
    allowOnMatch,
    rejection: {
      status: conf.response_code ?? 403,
      body: { message: conf.message ?? "Your IP address is not allowed" },
    },
  };
}

function access(state: State, ctx: PluginContext): Reply | undefined {
  return state.matches(ctx.remoteAddr) === state.allowOnMatch ? undefined : state.rejection;
}

export const ipRestriction: Plugin<IpRestrictionConfig, State> = { name, priority, schema, check, compile, access };

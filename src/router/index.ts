export { compileIpMatcher, validateIp } from "./ip.js";
export { compileRouter } from "./router.js";
export type { MatchInput, RouteMatch, Router, RouteSpec, VarSource } from "./types.js";
export { compileVars, type VarsPredicate, validateVars } from "./vars.js";

export { compileIpMatcher, validateIp } from "./ip.js";
export { compileRouter } from "./router.js";
export type { MatchInput, RouteMatch, RouteSpec, Router, VarSource } from "./types.js";
export { compileVars, validateVars, type VarsPredicate } from "./vars.js";

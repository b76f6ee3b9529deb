/**
 * Where nginx/APISIX variables come from: `uri`, `host`, `remote_addr`, `http_x_foo`, `arg_foo`,
 * `cookie_foo`, `post_arg.a.b`, `route_id` … (APISIX's `ctx.var`). The router's `vars` expressions, plugin
 * `_meta.filter`, balancers' hash keys and `$var` templates all read a request through this one method;
 * the request context implements it with the variable table in ./request-vars.ts.
 */
export interface VarSource {
  /** The variable's value, or undefined when it is not set (nginx's empty `$var`). */
  var(name: string): string | undefined;
}

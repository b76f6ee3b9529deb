// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${name} is the APISIX template syntax under test
import assert from "node:assert/strict";
import { test } from "node:test";
import { TestContext } from "../../test/helpers/plugin-context.js";
import { compileVarTemplate } from "./template.js";

const ctx = new TestContext({
  url: "/hello?name=Bill&empty=",
  headers: { key: "X-APISIX", host: "example.com:9080" },
  remoteAddr: "10.0.0.7",
});

test("$name and ${name} read request variables; unset ones render empty", () => {
  assert.equal(compileVarTemplate("/$uri/$arg_name").render(ctx), "//hello/Bill");
  assert.equal(compileVarTemplate("${host}-${ remote_addr }").render(ctx), "example.com-10.0.0.7");
  assert.equal(compileVarTemplate("[$helle][$http_missing]").render(ctx), "[][]");
  assert.equal(compileVarTemplate("$http_key-suffix").render(ctx), "X-APISIX-suffix", "a name stops at '-'");
});

test("${name ?? default} falls back only when the variable is unset", () => {
  assert.equal(compileVarTemplate("${http_user ?? anonymous}").render(ctx), "anonymous");
  assert.equal(compileVarTemplate("${http_key??anonymous}").render(ctx), "X-APISIX");
  assert.equal(compileVarTemplate("${arg_empty ?? x}").render(ctx), "", "an empty value is a value");
});

test("a backslash keeps $ literal and stays in the output, as APISIX's lookbehind leaves it", () => {
  assert.equal(compileVarTemplate("\\$uri costs \\$5").render(ctx), "\\$uri costs \\$5");
  assert.equal(compileVarTemplate("price: $").render(ctx), "price: $");
});

test("templates without $ are returned as they are", () => {
  const t = compileVarTemplate("/static/path");
  assert.ok(t.isStatic);
  assert.equal(t.render(ctx), "/static/path");
  assert.equal(t.variableCount, 0);
});

test("the escaper applies to substituted values, not to the template's own text", () => {
  const local = new TestContext({ url: "/a%3Fb?x=1" });
  const escaper = (v: string) => v.replaceAll("?", "%3F");
  assert.equal(compileVarTemplate("$uri?y=2").render(local, undefined, escaper), "/a%3Fb?y=2");
});

test("with captures, $N and ${N} are regex captures and missing ones are empty", () => {
  const m = /^\/test\/(\w+)\/(\w+)(\/x)?/.exec("/test/plugin/proxy");
  assert.ok(m);
  const t = compileVarTemplate("$1/${2}/[$3]/$0/$9 by $remote_addr", { captures: true });
  assert.equal(t.render(ctx, m), "plugin/proxy/[]//test/plugin/proxy/ by 10.0.0.7");
  assert.equal(t.render(ctx, undefined), "//[]// by 10.0.0.7", "no match: every capture is empty");
  assert.equal(compileVarTemplate("$1").render(ctx, m), "", "without the option $1 is the variable named 1");
});

test("renderIfResolved is undefined when no variable has a value (APISIX n_resolved == 0)", () => {
  assert.equal(compileVarTemplate("$remote_addr $http_key").renderIfResolved(ctx), "10.0.0.7 X-APISIX");
  assert.equal(compileVarTemplate("$http_a:$http_b").renderIfResolved(ctx), undefined);
  assert.equal(compileVarTemplate("$http_a:$arg_name").renderIfResolved(ctx), ":Bill");
  assert.equal(compileVarTemplate("$arg_empty").renderIfResolved(ctx), undefined);
  assert.equal(compileVarTemplate("${http_a ?? anon}").renderIfResolved(ctx), "anon", "a default resolves");
  assert.equal(compileVarTemplate("no variables").renderIfResolved(ctx), undefined);
});

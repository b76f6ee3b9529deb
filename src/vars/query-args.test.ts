import assert from "node:assert/strict";
import { test } from "node:test";
import { queryWithoutArg, uriWithoutArg } from "./query-args.js";

test("every copy of the argument goes, compared decoded; the rest stays byte for byte", () => {
  assert.equal(uriWithoutArg("/p?apikey=1&a=%20&api%6Bey=2&b", "apikey"), "/p?a=%20&b");
  assert.equal(uriWithoutArg("/p?jwt=x&jwt=y", "jwt"), "/p");
  assert.equal(uriWithoutArg("/p?a+b=1&c=%zz", "a b"), "/p?c=%zz");
  assert.equal(uriWithoutArg("/p", "apikey"), "/p");
  assert.equal(queryWithoutArg("a=1&&apikey", "apikey"), "a=1");
  assert.equal(queryWithoutArg("", "apikey"), "");
});

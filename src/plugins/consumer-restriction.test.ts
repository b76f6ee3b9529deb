import assert from "node:assert/strict";
import { test } from "node:test";
import { TestContext } from "../../test/helpers/plugin-context.js";
import { validatePluginConfig } from "../config/validate.js";
import { type ConsumerRestrictionConfig, consumerRestriction } from "./consumer-restriction.js";

const scope = { kind: "route", id: "1", revision: 1 };

interface Who {
  consumer?: string;
  group?: string;
  route?: string;
  service?: string;
  method?: string;
}

function instance(conf: Record<string, unknown>) {
  assert.equal(validatePluginConfig(consumerRestriction, conf, "route"), undefined);
  const state = consumerRestriction.compile!(conf as ConsumerRestrictionConfig, scope);
  return (who: Who) => {
    const ctx = new TestContext({ method: who.method ?? "GET" });
    ctx.consumerName = who.consumer;
    ctx.routeId = who.route;
    ctx.serviceId = who.service;
    if (who.group !== undefined) ctx.setVar("consumer_group_id", who.group);
    return consumerRestriction.access!(state, ctx);
  };
}

const invalid = (conf: unknown) => validatePluginConfig(consumerRestriction, conf, "route");

test("schema: APISIX's defaults and one of whitelist, blacklist, allowed_by_methods", () => {
  const conf: Record<string, unknown> = { whitelist: ["jack1"] };
  assert.equal(invalid(conf), undefined);
  assert.deepEqual(conf, { whitelist: ["jack1"], type: "consumer_name", rejected_code: 403 });
  assert.match(invalid({})!, /matches none of the required/);
  assert.match(invalid({ whitelist: [] })!, /whitelist/);
  assert.match(invalid({ whitelist: ["a"], type: "consumer_id" })!, /type/);
  assert.match(invalid({ whitelist: ["a"], rejected_code: 199 })!, /rejected_code/);
  assert.match(invalid({ allowed_by_methods: [{ user: "a", methods: ["FETCH"] }] })!, /methods/);
  assert.equal(invalid({ whitelist: ["a"], blacklist: ["b"] }), undefined, "both lists may be given");
});

test("whitelist by consumer name, with APISIX's messages", () => {
  const check = instance({ whitelist: ["JaneDoe"] });
  assert.equal(check({ consumer: "JaneDoe" }), undefined);
  assert.deepEqual(check({ consumer: "JohnDoe" }), {
    status: 403,
    body: { message: "The consumer_name is forbidden." },
  });
  assert.deepEqual(check({}), {
    status: 401,
    body: { message: "The request is rejected, please check the consumer_name for this request" },
  });
});

test("blacklist wins over whitelist; rejected_code and rejected_msg apply", () => {
  const check = instance({ whitelist: ["a", "b"], blacklist: ["b"], rejected_code: 401, rejected_msg: "nope" });
  assert.equal(check({ consumer: "a" }), undefined);
  assert.deepEqual(check({ consumer: "b" }), { status: 401, body: { message: "nope" } });
  assert.deepEqual(check({ consumer: "c" }), { status: 401, body: { message: "nope" } });
});

test("allowed_by_methods limits listed users; unlisted users and whitelisted ones are not limited", () => {
  const check = instance({ allowed_by_methods: [{ user: "jack1", methods: ["POST"] }] });
  assert.deepEqual(check({ consumer: "jack1", method: "GET" }), {
    status: 403,
    body: { message: "The consumer_name is forbidden." },
  });
  assert.equal(check({ consumer: "jack1", method: "POST" }), undefined);
  assert.equal(check({ consumer: "jack2", method: "DELETE" }), undefined);
  const both = instance({ whitelist: ["jack1"], allowed_by_methods: [{ user: "jack1", methods: ["POST"] }] });
  assert.equal(both({ consumer: "jack1", method: "GET" }), undefined, "whitelisted values skip the method check");
});

test("route_id, service_id and consumer_group_id types", () => {
  const route = instance({ type: "route_id", blacklist: ["1"] });
  assert.deepEqual(route({ route: "1" }), { status: 403, body: { message: "The route_id is forbidden." } });
  assert.equal(route({ route: "2" }), undefined);
  const service = instance({ type: "service_id", whitelist: ["s1"] });
  assert.equal(service({ service: "s1" }), undefined);
  assert.deepEqual(service({ service: "s2" }), { status: 403, body: { message: "The service_id is forbidden." } });
  assert.equal((service({}) as { status: number }).status, 401, "a route without a service has no service_id");
  const group = instance({ type: "consumer_group_id", whitelist: ["gold"] });
  assert.equal(group({ consumer: "jack", group: "gold" }), undefined);
  assert.deepEqual(group({ consumer: "tom", group: "silver" }), {
    status: 403,
    body: { message: "The consumer_group_id is forbidden." },
  });
  assert.deepEqual(group({ consumer: "rose" }), {
    status: 401,
    body: { message: "The request is rejected, please check the consumer_group_id for this request" },
  });
});

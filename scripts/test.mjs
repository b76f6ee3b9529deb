#!/usr/bin/env node
// Runs every *.test.ts under src/ and test/ with node's own test runner (tsx strips the types).
// Node 20's --test does not expand globs, so the file list is built here.
import { execFileSync, spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const roots = ["src", "test"];
const filter = process.argv.slice(2);

function collect(dir, out) {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) collect(full, out);
    else if (name.endsWith(".test.ts")) out.push(full);
  }
  return out;
}

let files = roots.flatMap((root) => collect(root, []));
if (filter.length > 0) files = files.filter((f) => filter.some((part) => f.includes(part)));
files.sort();
if (files.length === 0) {
  console.error("no test files matched");
  process.exit(1);
}

// Real servers some tests start (Debian packages), installed once here rather than by test files running
// in parallel, which would race for dpkg's lock.
const debianTools = [
  ["redis-server", "redis-server", /redis/],
  ["etcd", "etcd-server", /etcd/],
  ["etcdctl", "etcd-client", /etcd/],
];
const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
for (const [command, pkg, needs] of debianTools) {
  if (!files.some((f) => needs.test(f))) continue;
  if (spawnSync("sh", ["-c", `command -v ${command}`]).status === 0) continue;
  console.error(`installing ${pkg} from Debian packages for the tests`);
  if (spawnSync("apt-get", ["install", "-y", "-qq", pkg], { env, stdio: "ignore" }).status !== 0) {
    execFileSync("apt-get", ["update", "-qq"], { env, stdio: "inherit" });
    execFileSync("apt-get", ["install", "-y", "-qq", pkg], { env, stdio: "inherit" });
  }
}

const result = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-concurrency=2", "--test-timeout=120000", ...files],
  { stdio: "inherit" },
);
process.exit(result.status ?? 1);

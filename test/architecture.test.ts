import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { cruise, type ICruiseOptions, type ICruiseResult, type IViolation } from "dependency-cruiser";
import extractDepcruiseOptions from "dependency-cruiser/config-utl/extract-depcruise-options";

// The rooms of src/ and the direction of imports between them live in .dependency-cruiser.cjs (drawn in
// docs/ARCHITECTURE.md). This file makes them part of `npm test`: a new cycle or an upward import fails CI.

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const configFile = join(root, ".dependency-cruiser.cjs");
const { temporaryEdges, testSupport } = createRequire(import.meta.url)(configFile) as {
  temporaryEdges: { rule: string; from: string; to: string }[];
  testSupport: string;
};

async function cruiseSrc(baseDir: string): Promise<ICruiseResult> {
  const options: ICruiseOptions = { ...(await extractDepcruiseOptions(configFile)), baseDir };
  const { output } = await cruise(["src"], options);
  assert.ok(typeof output === "object", "dependency-cruiser returns its result as an object");
  return output;
}

function describe(v: IViolation): string {
  const path = v.cycle?.length ? ` (cycle: ${[v.from, ...v.cycle.map((c) => c.name)].join(" → ")})` : "";
  return `${v.rule.name}: ${v.from} → ${v.to}${path}`;
}

function explain(result: ICruiseResult, violations: IViolation[]): string {
  const why = new Map((result.summary.ruleSetUsed?.forbidden ?? []).map((r) => [r.name, r.comment]));
  const rules = [...new Set(violations.map((v) => v.rule.name))].map((n) => `  ${n}: ${why.get(n) ?? ""}`);
  return [...violations.map((v) => `  ${describe(v)}`), "why these rules exist:", ...rules].join("\n");
}

const result = await cruiseSrc(root);

test("src/ has no import cycle (type-only imports counted) and no import goes against the rooms' direction", () => {
  const { violations } = result.summary;
  assert.equal(
    violations.length,
    0,
    `${violations.length} architecture violation(s) (rules in .dependency-cruiser.cjs, map in docs/ARCHITECTURE.md):\n${explain(result, violations)}`,
  );
});

test("the check sees every module of src/ and the type-only imports between them", () => {
  const files = (readdirSync(join(root, "src"), { recursive: true }) as string[]).filter(
    (f) => f.endsWith(".ts") && !f.endsWith(".d.ts"),
  );
  const cruised = new Set(result.modules.filter((m) => m.source.startsWith("src/")).map((m) => m.source));
  const missed = files.map((f) => `src/${f.replaceAll("\\", "/")}`).filter((f) => !cruised.has(f));
  assert.deepEqual(missed, [], "files under src/ the rules never looked at");
  const typeOnly = result.modules.flatMap((m) => m.dependencies).filter((d) => d.dependencyTypes.includes("type-only"));
  assert.ok(typeOnly.length > 0, "tsPreCompilationDeps is on: type-only imports are edges");
});

test("what the rules treat as test support is exactly what the build leaves out of dist/", () => {
  // tsconfig.build.json excludes "src/**/*.<kind>.ts"; a file the rules excuse as test support but the build
  // ships would let production code import a test double unseen.
  const build = JSON.parse(readFileSync(join(root, "tsconfig.build.json"), "utf8")) as { exclude: string[] };
  const suffixes = build.exclude.map((glob) => {
    const m = /^src\/\*\*\/\*(\.[\w.]+)$/.exec(glob);
    assert.ok(m?.[1], `tsconfig.build.json exclude ${glob} has the form src/**/*.<kind>.ts`);
    return m[1];
  });
  const pattern = new RegExp(testSupport);
  const files = (readdirSync(join(root, "src"), { recursive: true }) as string[]).map((f) => `src/${f}`);
  const excluded = (f: string) => suffixes.some((s) => f.endsWith(s));
  assert.deepEqual(
    files.filter((f) => pattern.test(f) !== excluded(f)),
    [],
    "files where TEST_SUPPORT and the build's exclude disagree",
  );
  assert.ok(files.some(excluded), "the comparison saw test files");
});

test("each temporary exception still names an edge that exists (delete it from .dependency-cruiser.cjs once fixed)", () => {
  const gone = temporaryEdges.filter(
    (e) => !result.modules.some((m) => m.source === e.from && m.dependencies.some((d) => d.resolved === e.to)),
  );
  assert.deepEqual(gone, [], "these edges are fixed: remove their entries from TEMPORARY_EDGES");
});

test("the rules catch a type-only cycle and an upward import (a tree made to break three of them)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "weir-arch-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const write = (file: string, text: string) => {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), text);
  };
  write("src/router/a.ts", 'import type { B } from "./b.js";\nexport interface A { b?: B }\n');
  write("src/router/b.ts", 'import type { A } from "./a.js";\nexport interface B { a?: A }\n');
  write("src/store/c.ts", 'import { handle } from "../proxy/handler.js";\nexport const c = handle;\n');
  write("src/proxy/handler.ts", "export const handle = 1;\n");
  write("src/plugin-api/p.ts", 'import type { M } from "../observability/m.js";\nexport type P = M;\n');
  write("src/observability/m.ts", "export type M = number;\n");

  const broken = await cruiseSrc(dir);
  const found = broken.summary.violations.map(describe).sort();
  assert.deepEqual(found, [
    "leaves-stay-leaves: src/store/c.ts → src/proxy/handler.ts",
    "no-circular: src/router/a.ts → src/router/b.ts (cycle: src/router/a.ts → src/router/b.ts → src/router/a.ts)",
    "plugin-api-on-leaf-types: src/plugin-api/p.ts → src/observability/m.ts",
  ]);
});

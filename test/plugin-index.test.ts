import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { PHASES } from "../src/plugin-api/plugin.js";
import { pluginRegistry } from "../src/plugins/index.js";

// docs/plugins/README.md indexes every plugin the gateway registers: priority, phases, file, tests, doc.
// These tests read the registry the gateway uses and the table, and fail where they disagree.

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const indexFile = join(root, "docs/plugins/README.md");
const indexDir = dirname(indexFile);

interface Row {
  name: string;
  priority: string;
  phases: string;
  /** Repo-relative paths of the links in each column. */
  file: string[];
  unit: string[];
  integration: string[];
  doc: string[];
}

function links(cell: string): string[] {
  return [...cell.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => relative(root, resolve(indexDir, m[1]!)));
}

const rows: Row[] = readFileSync(indexFile, "utf8")
  .split("\n")
  .filter((line) => line.startsWith("| `"))
  .map((line) => {
    const cells = line.split("|").slice(1, -1);
    assert.equal(cells.length, 7, `a row has 7 columns: ${line}`);
    const [name, priority, phases, file, unit, integration, doc] = cells.map((c) => c.trim()) as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    return {
      name: name.replaceAll("`", ""),
      priority,
      phases,
      file: links(file),
      unit: links(unit),
      integration: links(integration),
      doc: links(doc),
    };
  });
const byName = new Map(rows.map((r) => [r.name, r]));

/** The name as a word of its own: "limit-req" in `"limit-req": {`, not in "limit-request". */
const mentions = (text: string, name: string) => new RegExp(`(?<![\\w-])${name}(?![\\w-])`).test(text);

test("every plugin in the registry has one row, and every row is a registered plugin", () => {
  const registered = [...pluginRegistry.keys()].sort();
  const listed = rows.map((r) => r.name).sort();
  assert.deepEqual(
    registered.filter((n) => !byName.has(n)),
    [],
    "registered plugins missing from docs/plugins/README.md",
  );
  assert.deepEqual(
    listed.filter((n) => !pluginRegistry.has(n)),
    [],
    "rows naming no registered plugin",
  );
  assert.equal(listed.length, new Set(listed).size, "one row per plugin");
});

test("rows run in priority order with the priority and phases the code declares", () => {
  const priorities = rows.map((r) => Number(r.priority));
  assert.deepEqual(
    priorities,
    [...priorities].sort((a, b) => b - a),
    "highest priority first, as a phase runs them",
  );
  for (const [name, plugin] of pluginRegistry) {
    const row = byName.get(name);
    if (row === undefined) continue;
    assert.equal(row.priority, String(plugin.priority), `${name}: priority`);
    const phases = PHASES.filter((phase) => typeof plugin[phase] === "function");
    assert.equal(row.phases, phases.join(", "), `${name}: phases, in lifecycle order`);
  }
});

test("each row's file is the module that exports the registered plugin", async () => {
  for (const [name, plugin] of pluginRegistry) {
    const row = byName.get(name);
    if (row === undefined) continue;
    assert.equal(row.file.length, 1, `${name}: one file`);
    const file = row.file[0]!;
    assert.ok(existsSync(join(root, file)), `${name}: ${file} exists`);
    const module: Record<string, unknown> = await import(pathToFileURL(join(root, file)).href);
    assert.ok(Object.values(module).includes(plugin), `${name}: ${file} exports the plugin the registry holds`);
  }
});

test("every linked file exists, and every linked test names its plugin", () => {
  const problems: string[] = [];
  for (const row of rows) {
    for (const file of [...row.unit, ...row.integration, ...row.doc]) {
      if (!existsSync(join(root, file))) problems.push(`${row.name}: ${file} does not exist`);
      else if (!row.doc.includes(file) && !mentions(readFileSync(join(root, file), "utf8"), row.name)) {
        problems.push(`${row.name}: ${file} never mentions ${row.name}`);
      }
    }
    if (row.unit.length + row.integration.length === 0) problems.push(`${row.name}: no test listed`);
    for (const file of row.integration) {
      if (!file.startsWith("test/")) problems.push(`${row.name}: integration test ${file} is not under test/`);
    }
  }
  assert.deepEqual(problems, []);
});

test("a plugin's unit test and doc beside it are linked from its row", () => {
  const problems: string[] = [];
  for (const row of rows) {
    const unit = `src/plugins/${row.name}.test.ts`;
    if (existsSync(join(root, unit)) && !row.unit.includes(unit)) problems.push(`${row.name}: ${unit} is not listed`);
    const doc = `docs/plugins/${row.name}.md`;
    if (existsSync(join(root, doc)) && !row.doc.includes(doc)) problems.push(`${row.name}: ${doc} is not linked`);
  }
  assert.deepEqual(problems, []);
});

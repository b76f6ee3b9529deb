// Weir's rooms and the direction of imports between them (docs/ARCHITECTURE.md draws the map).
// test/architecture.test.ts runs these rules over src/ in `npm test`; `npx depcruise src` prints the same.
//
//   cli → gateway.ts (wiring) → admin/, control/ → proxy/ → snapshot/      the lifecycle rooms
//     → plugins/ → plugin-api/ → ai/, and observability/                    the middle rooms
//     → upstream/, fleet/, ratelimit/, router/, vars/, store/, auth/, config/, http/, version.ts   the leaves
//
// A rule names the room, the rooms it may not reach, and why; a violation is a design change to make
// on purpose, in the same commit, not an exception to add here.

/** Rooms that import nothing above them. */
const LEAVES = "^src/(upstream|fleet|ratelimit|router|vars|store|auth|config|http)/|^src/version\\.ts$";
/** Exactly the files tsconfig.build.json leaves out of dist/: tests and the fixtures beside them. Test
 * doubles and helpers live in test/helpers/, never under src/. */
const TEST_SUPPORT = "\\.test\\.ts$|\\.fixture\\.ts$";
const LIFECYCLE = "^src/(proxy|snapshot|admin|control|cli)/|^src/gateway";
const NOT_LEAF = "^src/(proxy|snapshot|plugins|plugin-api|ai|observability|admin|control|cli|simulator)/|^src/gateway";

// TEMPORARY: upward edges that exist today and are being removed. Each is one exact edge (file → file),
// not a file or a room, so anything else those files start importing still fails; the architecture test
// fails once an entry's edge is gone, so the exception is deleted with its fix. Empty since issue 9 landed:
// keep it that way, and add an entry only with the plan that removes it.
const TEMPORARY_EDGES = [];

const exactly = (file) => `^${file.replaceAll(".", "\\.")}$`;

/** The rule, plus one narrowed copy per temporary edge it has: that file may make that one import, no other. */
function withTemporaryEdges(rule) {
  const edges = TEMPORARY_EDGES.filter((e) => e.rule === rule.name);
  if (edges.length === 0) return [rule];
  const excused = edges.map((e) => exactly(e.from));
  const base = { ...rule, from: { ...rule.from, pathNot: [rule.from.pathNot ?? [], excused].flat() } };
  const narrowed = edges.map((e) => ({
    ...rule,
    comment: `${rule.comment} (temporary: ${e.from} → ${e.to} allowed until its fix lands)`,
    from: { path: exactly(e.from) },
    to: { ...rule.to, pathNot: exactly(e.to) },
  }));
  return [base, ...narrowed];
}

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "An import cycle, type-only imports included: two modules that cannot be read, tested or moved apart.",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "not-to-unresolvable",
      severity: "error",
      comment: "An import depcruise cannot resolve is one the other rules cannot see; keep the check honest.",
      from: { path: "^src/" },
      to: { couldNotResolve: true, dependencyTypesNot: ["core"] },
    },
    {
      name: "no-test-tree-in-src",
      severity: "error",
      comment:
        "What src/ ships never imports test/. (Unit tests beside the code may use the test tree's helpers, e.g. to start a real etcd: test support lives in the test tree.)",
      from: { path: "^src/", pathNot: TEST_SUPPORT },
      to: { path: "^test/" },
    },
    {
      name: "no-test-support-in-production",
      severity: "error",
      comment: "Tests and the fixtures beside the code (*.test.ts, *.fixture.ts, left out of dist/) are for tests only.",
      from: { path: "^src/", pathNot: TEST_SUPPORT },
      to: { path: TEST_SUPPORT },
    },
    {
      name: "middle-not-to-lifecycle",
      severity: "error",
      comment:
        "plugins/, plugin-api/, ai/ and observability/ serve the lifecycle; they never reach up into the proxy, the snapshot compiler, the APIs or the wiring.",
      from: { path: "^src/(ai|plugins|plugin-api|observability)/" },
      to: { path: LIFECYCLE },
    },
    {
      name: "ai-protocol-only",
      severity: "error",
      comment:
        "ai/ is protocol work (providers, translation, SSE, usage, the instance plan) over the leaves; plugins and the lifecycle build on it, not the reverse.",
      from: { path: "^src/ai/" },
      to: { path: "^src/", pathNot: [LEAVES, "^src/ai/"] },
    },
    {
      name: "plugin-api-on-leaf-types",
      severity: "error",
      comment:
        "The plugin contract (Plugin, PluginContext, Reply, UpstreamHandle) depends only on leaf types and ai/'s protocol types: it knows neither the plugins that implement it nor the lifecycle that runs them.",
      from: { path: "^src/plugin-api/" },
      to: { path: "^src/", pathNot: [LEAVES, "^src/ai/", "^src/plugin-api/"] },
    },
    {
      name: "observability-fed-by-hooks",
      severity: "error",
      comment:
        "observability/ (metrics, logs, traces) is fed by hooks the gateway owns; it does not read plugin or AI types.",
      from: { path: "^src/observability/" },
      to: { path: "^src/(plugins|plugin-api|ai)/" },
    },
    {
      name: "snapshot-not-to-proxy",
      severity: "error",
      comment: "A config change compiles to a snapshot without knowing how requests run over it.",
      from: { path: "^src/snapshot/" },
      to: { path: "^src/proxy/" },
    },
    {
      name: "lifecycle-not-to-apis",
      severity: "error",
      comment: "The proxy and the snapshot compiler do not depend on the Admin or Control API, the CLI or the wiring.",
      from: { path: "^src/(proxy|snapshot)/" },
      to: { path: "^src/(admin|control|cli)/|^src/gateway" },
    },
    {
      name: "only-cli-wires-the-gateway",
      severity: "error",
      comment: "gateway.ts is the wiring and cli/ the entry point: nothing else starts a gateway or calls the CLI.",
      from: { path: "^src/", pathNot: "^src/cli/" },
      to: { path: "^src/cli/|^src/gateway" },
    },
    {
      name: "leaves-stay-leaves",
      severity: "error",
      comment:
        "upstream/, fleet/, ratelimit/, router/, vars/, store/, auth/, config/, http/ and version.ts import only each other, so each can be read and tested alone.",
      from: { path: LEAVES },
      to: { path: NOT_LEAF },
    },
    {
      name: "simulator-stands-alone",
      severity: "error",
      comment:
        "The LLM simulator stands in for real providers in tests; sharing code with the gateway would let it agree with the gateway's bugs.",
      from: { path: "^src/simulator/" },
      to: { path: "^src/", pathNot: "^src/simulator/" },
    },
    {
      name: "only-cli-runs-the-simulator",
      severity: "error",
      comment: "The gateway never depends on its test double; only `weir llm-sim` starts it.",
      from: { path: "^src/", pathNot: "^src/(simulator|cli)/" },
      to: { path: "^src/simulator/" },
    },
  ].flatMap(withTemporaryEdges),
  options: {
    // Type-only imports are edges too: a cycle through types still ties two modules together.
    tsPreCompilationDeps: true,
    doNotFollow: { path: "node_modules" },
    exclude: { path: "node_modules" },
    moduleSystems: ["es6"],
  },
};

// Not a depcruise option (so not enumerable, which keeps its config check quiet): the architecture test
// reads it to fail once a temporary edge is gone, so the exception cannot outlive its reason.
Object.defineProperty(module.exports, "temporaryEdges", { value: TEMPORARY_EDGES, enumerable: false });
// Same, so the test can hold TEST_SUPPORT to what tsconfig.build.json leaves out of dist/.
Object.defineProperty(module.exports, "testSupport", { value: TEST_SUPPORT, enumerable: false });

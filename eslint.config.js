// @ts-check
// Lint: the recommended sets of ESLint and typescript-eslint (no stylistic rules: the compiler and
// review keep the style), two type-aware rules that catch real bugs cheaply (a promise nobody awaits),
// and the project's architecture rules: the pure logic files import no I/O and read no clock.
import path from "node:path";
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const here = import.meta.dirname;

/**
 * README, "Folders": each top-level folder has one public entry, `index.ts`, and other folders
 * import only it; `test/` may also import a folder's `internal.ts`, the internals it tests (as
 * nats.js's `internal_mod.ts`). Imports within a folder are free.
 */
const folderEntries = {
  meta: { type: "problem", schema: [] },
  create(context) {
    const fromTop = path.relative(here, context.filename).split(path.sep)[0];
    const check = (node, source) => {
      if (typeof source?.value !== "string" || !source.value.startsWith(".")) return;
      const target = path.relative(here, path.resolve(path.dirname(context.filename), source.value));
      const [top, ...rest] = target.split(path.sep);
      if (top === fromTop || top === ".." || rest.length === 0) return;
      const entry = rest.join("/");
      if (rest.length === 1 && (entry === "index.ts" || (entry === "internal.ts" && fromTop === "test"))) return;
      context.report({
        node,
        message: `Import ${top}/ through its entry ${top}/index.ts${fromTop === "test" ? ` (or ${top}/internal.ts)` : ""}, not ${target}.`,
      });
    };
    return {
      ImportDeclaration: (n) => check(n, n.source),
      ExportNamedDeclaration: (n) => check(n, n.source),
      ExportAllDeclaration: (n) => check(n, n.source),
      ImportExpression: (n) => check(n, n.source),
    };
  },
};

/** Modules that do I/O: none of them may be imported by a pure logic file. */
const ioModules = [
  "pg",
  "pg-copy-streams",
  "@nats-io/*",
  "fs",
  "fs/*",
  "node:*",
  "net",
  "http",
  "https",
  "child_process",
  "dgram",
  "dns",
  "tls",
  "worker_threads",
  "fastify",
  "@fastify/*",
  "pino",
  "prom-client",
  "mqtt",
  // Our own folders that do I/O.
  "**/ingest/**",
  "**/sql/**",
  "**/cli/**",
];

/** The deterministic logic (habit 2 of STYLE.md): steps, rules, the session machine, billing. */
const pureLogicFiles = [
  "processors/*/step.ts",
  "processors/*/rules*.ts",
  "processors/*/decide.ts",
  "processors/unit.ts",
  "processors/terminal.ts",
  "processors/deadlines.ts",
  "control/sessions/machine.ts",
  "control/sessions/bill.ts",
  "control/reports/tou.ts",
  "contracts/billing/**/*.ts",
];

const clockMessage = "Time is an input to the logic: take `now` as an argument (STYLE.md, habit 2).";

export default tseslint.config(
  {
    ignores: ["node_modules/**", ".data/**", "test-results/**", "bench/results/**", "dashboards/json/**", "control/pages/**"],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    plugins: { voltvend: { rules: { "folder-entries": folderEntries } } },
    rules: { "voltvend/folder-entries": "error" },
  },
  {
    files: ["**/*.ts"],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A promise nobody awaits loses its error (an unhandled rejection ends the process).
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: false }],
      // `_`-prefixed names say "unused on purpose" (the compiler's noUnused* flags agree).
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none", ignoreRestSiblings: true },
      ],
      // A variable that a closure reads before its one assignment (a close hook) stays a `let`.
      "prefer-const": ["error", { ignoreReadBeforeAssign: true }],
      // Control characters in patterns are on purpose: the edge refuses them (contracts/bounds.ts).
      "no-control-regex": "off",
      // `while (true)` loops that end by return or break are how the consume loops are written.
      "no-constant-condition": ["error", { checkLoops: false }],
    },
  },
  {
    // Tests and benchmarks read HTTP bodies and NATS replies as `any` to poke at them.
    files: ["test/**/*.ts", "bench/**/*.ts"],
    rules: { "@typescript-eslint/no-explicit-any": "off" },
  },
  {
    files: ["**/*.js", "**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: pureLogicFiles,
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ioModules,
              message: "A pure logic file does no I/O: its adapter does (STYLE.md, habit 2).",
            },
          ],
        },
      ],
      "no-restricted-properties": [
        "error",
        { object: "Date", property: "now", message: clockMessage },
        { object: "performance", property: "now", message: clockMessage },
        { object: "process", property: "env", message: "Configuration is parsed once at start and passed down." },
      ],
      "no-restricted-syntax": [
        "error",
        { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: clockMessage },
        { selector: "CallExpression[callee.name=/^(setTimeout|setInterval|setImmediate|fetch)$/]", message: "A pure logic file schedules nothing and fetches nothing." },
      ],
    },
  },
);

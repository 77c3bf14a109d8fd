// Lint guards the architecture: import boundaries per folder, no cycles, no floating promises,
// type-only imports marked. A wrong arrow fails CI instead of a review.
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import importX from "eslint-plugin-import-x";

const nodeBuiltins = ["node:*", "fs", "path", "os", "child_process", "net", "http", "events", "process", "util"];

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "coverage/**", ".muster/**", "docs/**", "bin/**", "tmp/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { "import-x": importX },
    settings: {
      // import-x must parse the imported .ts files (behind their .js specifiers) to see cycles.
      "import-x/extensions": [".ts", ".js"],
      "import-x/parsers": { "@typescript-eslint/parser": [".ts"] },
      "import-x/resolver": { typescript: { project: "./tsconfig.json" }, node: { extensions: [".ts", ".js"] } },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: false }],
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "separate-type-imports" }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-explicit-any": "off",
      "import-x/no-cycle": ["error", { maxDepth: 20 }],
      "import-x/no-self-import": "error",
      "no-restricted-syntax": ["error", { selector: "ExportAllDeclaration", message: "Use explicit named exports, not export *." }],
    },
  },
  {
    // Machines are pure: no I/O, no services, no clock, no NATS.
    files: ["machines/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", {
        patterns: [
          { group: ["@nats-io/*", "pino", "pino-*", ...nodeBuiltins], message: "machines/ is pure: no I/O imports." },
          { group: ["**/services/**", "../services/*"], message: "machines/ must not import services/." },
          { group: ["**/src/cli/**", "**/src/nats/**", "**/src/charts/**", "**/src/protocol/**", "**/src/logger*", "**/src/config*"], message: "machines/ imports only pure helpers from src/ (exit-status, idset)." },
        ],
      }],
      "no-restricted-globals": ["error", { name: "setTimeout", message: "machines/ have no timers: deadlines live in context." }, { name: "setInterval", message: "machines/ have no timers." }, { name: "process", message: "machines/ do not read the process." }],
      "no-restricted-properties": ["error", { object: "Date", property: "now", message: "machines/ do not read the clock: time comes in on events." }],
    },
  },
  {
    // src/ is shared code: it may not reach into services/ (the CLI talks to services over NATS only).
    files: ["src/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", {
        patterns: [{ group: ["**/services/**"], message: "src/ must not import services/: talk over NATS." }],
      }],
    },
  },
  {
    files: ["test/**/*.ts", "scripts/**/*.ts", "vitest.config.ts"],
    rules: { "@typescript-eslint/no-non-null-assertion": "off" },
  },
);

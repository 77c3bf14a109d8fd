#!/usr/bin/env node
// Entry point of the `muster` command. The compiled code lives in dist/ (built by `npm ci`'s prepare step).
// The CLI answers help and usage errors from its option specs alone and imports a command's code only
// when the command runs; the service commands (up, supervisor, agent, inspect) load the services.
const run = import("../dist/src/cli/main.js").then((m) => m.main(process.argv.slice(2), process.env, () => import("../dist/services/cli.js").then((s) => s.runService)));

run.then(
  (code) => {
    process.exitCode = code;
    // Services and followers may leave handles open; the command is done.
    setImmediate(() => process.exit(code));
  },
  (err) => {
    process.stderr.write(`muster: error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);

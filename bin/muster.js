#!/usr/bin/env node
// Entry point of the `muster` command. The compiled code lives in dist/ (built by `npm ci`'s prepare step).
// Client commands load only the CLI; service commands (up, supervisor, agent, inspect) load the services.
const SERVICE_COMMANDS = new Set(["up", "supervisor", "agent", "inspect"]);
const argv = process.argv.slice(2);

const run = SERVICE_COMMANDS.has(argv[0] ?? "")
  ? import("../dist/services/cli.js").then((m) => m.serviceMain(argv))
  : import("../dist/src/cli/main.js").then((m) => m.main(argv));

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

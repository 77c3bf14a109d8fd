#!/usr/bin/env node
// Entry point of the `muster` command. The compiled code lives in dist/ (built by `npm ci`'s prepare step).
// The CLI answers help and usage errors from its option specs alone and imports a command's code only
// when the command runs; the service commands (up, supervisor, agent, inspect) load the services.
// Every exit goes through exitWhenDrained (src/cli/stdio.ts): stdout and stderr reach a pipe or a file
// in full first, and a reader that went away (`| head`) ends the command quietly with status 0.
import("../dist/src/cli/stdio.js").then(
  (stdio) => {
    stdio.guardStdio();
    import("../dist/src/cli/main.js")
      .then((m) => m.main(process.argv.slice(2), process.env, () => import("../dist/services/cli.js").then((s) => s.runService)))
      .then(
        // Services and followers may leave handles open; the command is done once its output is out.
        (code) => stdio.exitWhenDrained(code),
        (err) => {
          process.stderr.write(`muster: error: ${err instanceof Error ? err.message : String(err)}\n`);
          return stdio.exitWhenDrained(1);
        },
      );
  },
  (err) => {
    process.stderr.write(`muster: error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);

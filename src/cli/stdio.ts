/**
 * The CLI's single way out: every command's output reaches a pipe or a file in full before the
 * process exits, and a reader that goes away (`muster … | head -1`) ends the command quietly with
 * status 0, as coreutils do, instead of a stack trace. bin/muster.js installs the guards and exits
 * through `exitWhenDrained`; commands with something to undo on a broken pipe (a running step)
 * register it with `onBrokenPipe`. A service command (`up`, `agent` …) is not cut short: a write
 * error on its stdout or stderr stops it as SIGTERM does, in order.
 */

/** A write stream as far as draining and errors go (process.stdout and process.stderr). */
interface Out {
  write(chunk: string, cb: (err?: Error | null) => void): boolean;
  on(event: "error", listener: (err: NodeJS.ErrnoException) => void): unknown;
  readonly destroyed: boolean;
}

const brokenPipeHooks = new Set<() => Promise<unknown>>();
/** How long the broken-pipe hooks may take before the process exits anyway, ms. */
const BROKEN_PIPE_HOOK_MS = 2_000;
let leaving = false;
let service = false;
let terminated = false;

/** From now on a write error on stdout or stderr stops the process as SIGTERM does (for the service commands) instead of exiting at once. */
export function terminateOnBrokenPipe(): void {
  service = true;
}

/** Runs `hook` (bounded by a short timeout) before the process exits on a broken pipe; returns an unregister function. */
export function onBrokenPipe(hook: () => Promise<unknown>): () => void {
  brokenPipeHooks.add(hook);
  return () => brokenPipeHooks.delete(hook);
}

/**
 * Handles write errors on stdout and stderr for the life of the process: EPIPE (the reader is gone)
 * runs the broken-pipe hooks and exits 0 without a word; any other write error (a full disk) is one
 * line on stderr and status 1.
 */
export function guardStdio(stdout: Out = process.stdout, stderr: Out = process.stderr, exit: (code: number) => void = (c) => process.exit(c)): void {
  const onError = (err: NodeJS.ErrnoException, which: Out): void => {
    if (service) {
      if (!terminated) process.kill(process.pid, "SIGTERM");
      terminated = true;
      return;
    }
    if (leaving) return;
    leaving = true;
    if (err.code === "EPIPE") {
      void runHooks().finally(() => exit(0));
      return;
    }
    if (which !== stderr && !stderr.destroyed) {
      stderr.write(`muster: error: write error: ${err.message}\n`, () => exit(1));
      return;
    }
    exit(1);
  };
  stdout.on("error", (err) => onError(err, stdout));
  stderr.on("error", (err) => onError(err, stderr));
}

async function runHooks(): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const hooks = [...brokenPipeHooks].map((h) => h().catch(() => undefined));
  await Promise.race([Promise.all(hooks), new Promise<void>((r) => (timer = setTimeout(r, BROKEN_PIPE_HOOK_MS)))]);
  clearTimeout(timer);
}

/** Resolves once everything written to `s` so far has been handed to the OS (or the stream failed). */
export function drained(s: Out): Promise<void> {
  if (s.destroyed) return Promise.resolve();
  // Write callbacks run in order: an empty write's callback runs after every earlier write completed.
  return new Promise((resolve) => s.write("", () => resolve()));
}

/** Exits with `code` once stdout and stderr have drained; a broken pipe meanwhile exits as `guardStdio` says. */
export async function exitWhenDrained(code: number, exit: (code: number) => void = (c) => process.exit(c)): Promise<void> {
  process.exitCode = code;
  await Promise.all([drained(process.stdout), drained(process.stderr)]);
  if (!leaving) exit(code);
}

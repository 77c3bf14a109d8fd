/**
 * Where `muster run -o/--output` and `-e/--error` send each task stream, as srun's IO redirection
 * does: a filename pattern (src/filename-pattern) opens one file per distinct expanded name (per
 * task with `%t`, per node with `%n`/`%N`, else one for the step), truncated as srun does; `none`
 * discards; a task id keeps only that task's stream on muster run's own stdout/stderr. Without
 * `-e`, stderr goes where `-o` says. Files are written by `muster run` itself, on the host it runs on.
 */
import { createWriteStream, type WriteStream } from "node:fs";
import { resolve } from "node:path";
import { MusterError } from "../errors.js";
import { expandFilenamePattern, patternNeedsNode, type PatternFields } from "../filename-pattern/index.js";
import type { IoStream } from "../protocol/index.js";
import type { OutputTarget } from "./step-output.js";

/** Where one stream of the tasks goes. */
export type OutputRoute = { readonly kind: "terminal" } | { readonly kind: "none" } | { readonly kind: "task"; readonly rank: number } | { readonly kind: "file"; readonly pattern: string };

/** Reads an `-o`/`-e` value (undefined: the terminal). */
export function parseOutputRoute(value: string | undefined, option: string): OutputRoute {
  if (value === undefined) return { kind: "terminal" };
  if (value === "") throw new MusterError("USAGE", `run: option --${option} needs a file name pattern, none or a task id`);
  if (value === "none") return { kind: "none" };
  if (/^\d+$/.test(value)) return { kind: "task", rank: Number(value) };
  return { kind: "file", pattern: value };
}

/** The routes of stdout and stderr from `-o` and `-e`: stderr follows stdout unless `-e` is given. */
export function outputRoutes(output: string | undefined, error: string | undefined): Record<IoStream, OutputRoute> {
  const stdout = parseOutputRoute(output, "output");
  return { stdout, stderr: error === undefined ? stdout : parseOutputRoute(error, "error") };
}

/** True when a route's file names need the task's node (known once the step is placed). */
export function routesNeedNode(routes: Record<IoStream, OutputRoute>): boolean {
  return Object.values(routes).some((r) => r.kind === "file" && patternNeedsNode(r.pattern));
}

/** The files and terminal targets of one step's output. */
export class OutputFiles {
  private readonly files = new Map<string, WriteStream>();
  private readonly failed = new Set<string>();

  constructor(
    private readonly routes: Record<IoStream, OutputRoute>,
    private readonly opts: {
      /** The pattern fields of a task (job, step, user, job name, node …). */
      readonly fields: (rank: number) => PatternFields;
      readonly cwd: string;
      readonly stdout: (b: Uint8Array) => void;
      readonly stderr: (b: Uint8Array) => void;
      /** Told once per file that cannot be written. */
      readonly onError: (path: string, err: Error) => void;
    },
  ) {}

  /** Where a task stream goes; undefined discards it. */
  target(rank: number, stream: IoStream): OutputTarget | undefined {
    const route = this.routes[stream];
    const own = stream === "stdout" ? this.opts.stdout : this.opts.stderr;
    switch (route.kind) {
      case "terminal":
        return { write: own };
      case "none":
        return undefined;
      case "task":
        return route.rank === rank ? { write: own } : undefined;
      case "file":
        return this.file(resolve(this.opts.cwd, expandFilenamePattern(route.pattern, this.opts.fields(rank))));
    }
  }

  /** Finishes every file; resolves once their bytes are written. */
  async close(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => new Promise<void>((r) => (f.destroyed ? r() : f.end(() => r())))));
  }

  private file(path: string): OutputTarget | undefined {
    if (this.failed.has(path)) return undefined;
    let f = this.files.get(path);
    if (!f) {
      f = createWriteStream(path, { flags: "w" });
      f.on("error", (err) => {
        if (this.failed.has(path)) return;
        this.failed.add(path);
        this.opts.onError(path, err);
      });
      this.files.set(path, f);
    }
    const stream = f;
    return { write: (b) => void (this.failed.has(path) || stream.write(b)) };
  }
}

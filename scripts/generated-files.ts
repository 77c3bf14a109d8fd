/**
 * What the generators in scripts/ share: comparing rendered files with the generated files of a
 * docs folder, writing them, and the command line (`--check` writes nothing and exits 1 on drift).
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Differences between the rendered files and the generated files under a root. */
export interface Drift {
  readonly stale: string[];
  readonly missing: string[];
  readonly extra: string[];
}

/**
 * Compares `rendered` (repo-relative path → content) with the files of `dir` under `root` that
 * `isGenerated` (given a file name) claims; other files of `dir` are left out.
 */
export function checkGenerated(root: string, dir: string, isGenerated: (file: string) => boolean, rendered: ReadonlyMap<string, string>): Drift {
  let onDisk: string[] = [];
  try {
    onDisk = readdirSync(join(root, dir)).filter(isGenerated).map((f) => `${dir}/${f}`);
  } catch {
    onDisk = [];
  }
  const stale: string[] = [];
  const missing: string[] = [];
  for (const [path, content] of rendered) {
    if (!onDisk.includes(path)) missing.push(path);
    else if (readFileSync(join(root, path), "utf8") !== content) stale.push(path);
  }
  const extra = onDisk.filter((p) => !rendered.has(p)).sort();
  return { stale, missing, extra };
}

/** Writes `rendered` under `root` and removes the generated files of `dir` it no longer has; returns the drift before. */
export function writeGenerated(root: string, dir: string, isGenerated: (file: string) => boolean, rendered: ReadonlyMap<string, string>): Drift {
  const drift = checkGenerated(root, dir, isGenerated, rendered);
  mkdirSync(join(root, dir), { recursive: true });
  for (const [path, content] of rendered) writeFileSync(join(root, path), content);
  for (const path of drift.extra) rmSync(join(root, path));
  return drift;
}

/** How `runGenerator` checks, writes and reports. */
export interface Generator {
  readonly check: () => Drift;
  readonly write: () => Drift;
  /** The command that brings the files up to date, printed after the drift (e.g. `npm run gen:charts`). */
  readonly hint: string;
  /** The summary line printed after writing, given how many files changed. */
  readonly label: (changed: number) => string;
}

/** A generator's main: with `--check`, prints the drift to stderr and returns 1 if any; else writes and prints the summary. */
export function runGenerator(argv: readonly string[], gen: Generator): number {
  if (argv.includes("--check")) {
    const { stale, missing, extra } = gen.check();
    const lines = [...stale.map((p) => `stale: ${p}`), ...missing.map((p) => `missing: ${p}`), ...extra.map((p) => `extra: ${p}`)];
    if (lines.length === 0) return 0;
    process.stderr.write(`${lines.join("\n")}\nrun: ${gen.hint}\n`);
    return 1;
  }
  const { stale, missing, extra } = gen.write();
  process.stdout.write(`${gen.label(stale.length + missing.length + extra.length)}\n`);
  return 0;
}

/**
 * srun's and sbatch's filename patterns for `-o/--output` and `-e/--error` (srun(1), "IO
 * Redirection"): `%j` job id, `%s` step id, `%t` task id (one file per task), `%n` node index in the
 * step (one file per node), `%N` node name, `%u` user, `%x` job name, `%J` job.step (the job id alone
 * for a batch step), `%A`/`%a` the job id and 4294967294 (no job arrays: as Slurm writes them for a job
 * outside an array), `%%` a `%`.
 * A number between `%` and the letter zero-pads a numeric value (`%4j` → `0128`) and is ignored for
 * names. A pattern containing a backslash is not expanded at all; its backslashes are removed.
 * Pure: no I/O, used by the CLI (`run -o/-e`), the supervisor and the agent (`batch -o/-e`).
 */

/** What a pattern may name; a field left undefined is not known (yet) where the pattern is expanded. */
export interface PatternFields {
  readonly job?: string;
  /** `0`, `1`, … or `batch`. */
  readonly step?: string;
  readonly task?: number;
  /** Index of the task's node among the step's nodes. */
  readonly nodeIndex?: number;
  readonly node?: string;
  readonly user?: string;
  readonly jobName?: string;
}

/** How to expand. */
export interface ExpandOptions {
  /**
   * Leave what is not known as it is written (`%N`, `%3t`) and keep `%%` as `%%`, so that a later
   * expansion where more is known (the agent knows its node) finishes the job.
   */
  readonly partial?: boolean;
}

const SPEC = /%(\d*)([%AaJjsNntux])/g;

/** The value of one specifier, or undefined when its field is not known. */
function valueOf(letter: string, f: PatternFields, width: number): string | undefined {
  const pad = (n: number | string | undefined): string | undefined => (n === undefined ? undefined : /^\d+$/.test(String(n)) ? String(n).padStart(width, "0") : String(n));
  switch (letter) {
    case "j":
      return pad(f.job);
    case "s":
      return pad(f.step);
    case "t":
      return pad(f.task);
    case "n":
      return pad(f.nodeIndex);
    case "J":
      // A batch step's %J is the job id alone (as sbatch writes it).
      return f.job === undefined || f.step === undefined ? undefined : f.step === "batch" ? pad(f.job) : `${pad(f.job)}.${f.step}`;
    case "N":
      return f.node;
    case "u":
      return f.user;
    case "x":
      return f.jobName;
    default:
      // %A and %a: muster has no job arrays; as Slurm does for a job outside an array, the job id and 4294967294.
      return letter === "A" ? pad(f.job) : pad(4294967294);
  }
}

/** Expands a filename pattern with what is known. */
export function expandFilenamePattern(pattern: string, fields: PatternFields, opts: ExpandOptions = {}): string {
  if (pattern.includes("\\")) return opts.partial ? pattern : pattern.replaceAll("\\", "");
  return pattern.replace(SPEC, (whole, digits: string, letter: string) => {
    if (letter === "%") return opts.partial ? "%%" : "%";
    const v = valueOf(letter, fields, digits ? Math.min(Number(digits), 10) : 0);
    return v ?? whole;
  });
}

/** What a pattern makes files per: `task` with `%t`, `node` with `%n`/`%N`, else `step` (one file). */
export function patternScope(pattern: string): "task" | "node" | "step" {
  if (pattern.includes("\\")) return "step";
  let scope: "task" | "node" | "step" = "step";
  for (const m of pattern.matchAll(SPEC)) {
    if (m[2] === "t") return "task";
    if (m[2] === "n" || m[2] === "N") scope = "node";
  }
  return scope;
}

/** True when the pattern names the task's node (`%n`, `%N`), which is known only once the step is placed. */
export function patternNeedsNode(pattern: string): boolean {
  return !pattern.includes("\\") && [...pattern.matchAll(SPEC)].some((m) => m[2] === "n" || m[2] === "N");
}

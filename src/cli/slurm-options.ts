/**
 * The options `run` and `batch` share with srun and sbatch for where and how tasks run: `--export`,
 * `-D/--chdir`, `-w/--nodelist`, and the defaults a `muster run` inside a job takes from it.
 *
 * `--export` as srun and sbatch read it: which of the submitting environment's variables a task
 * gets. `ALL` (the default): every one; `NONE`: none; `VAR,VAR=value,…`: only those; `ALL,VAR=value`:
 * every one, a listed value applying where the environment has no such variable (Slurm's rule).
 * Whatever the mode, muster's secrets, its per-task variables and Slurm's are never taken.
 */
import { hostname } from "node:os";
import { resolve } from "node:path";
import { MusterError } from "../errors.js";
import { expandHostlist } from "../hostlist.js";
import { TASK_VARIABLES, isSecretVariable, isSlurmVariable } from "../task-env.js";

/** What a submission carries of the submitting environment. */
export interface ExportedEnv {
  readonly env: Record<string, string>;
  /** `NONE`: the task's environment is `env` alone, not layered over its node's. */
  readonly envExport: "ALL" | "NONE";
}

/** True for a variable the submitting environment never passes on. */
function kept(name: string): boolean {
  return !TASK_VARIABLES.has(name) && !isSlurmVariable(name) && !isSecretVariable(name);
}

/** The environment a submission carries, by `--export` (undefined: ALL); throws USAGE naming the bad item. */
export function exportedEnv(command: string, spec: string | undefined, env: Readonly<Record<string, string | undefined>>): ExportedEnv {
  const bad = (why: string) => new MusterError("USAGE", `${command}: option --export: ${why}`);
  const all: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && /^[^=\0]+$/.test(k) && !v.includes("\0") && kept(k)) all[k] = v;
  if (spec === undefined || spec === "ALL") return { env: all, envExport: "ALL" };
  if (spec === "NONE") return { env: {}, envExport: "NONE" };
  const items = spec.split(",");
  const withAll = items.includes("ALL");
  if (items.includes("NONE")) throw bad(`NONE takes no variables (--export=VAR,... exports only those)`);
  const out: Record<string, string> = withAll ? { ...all } : {};
  for (const item of items) {
    if (item === "ALL") continue;
    const eq = item.indexOf("=");
    const name = eq < 0 ? item : item.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw bad(`"${item}" is not VAR or VAR=VALUE`);
    if (isSecretVariable(name)) throw bad(`${name} is a secret muster never passes to tasks`);
    if (!kept(name)) throw bad(`${name} is set by muster for each task`);
    const value = eq < 0 ? env[name] : item.slice(eq + 1);
    if (value === undefined) continue; // srun: a named variable the environment lacks is not set
    if (value.includes("\0")) throw bad(`${name}'s value holds a NUL byte`);
    // Slurm: with ALL, the environment's own value wins over a listed one.
    if (withAll && eq >= 0 && name in all) continue;
    out[name] = value;
  }
  return { env: out, envExport: withAll ? "ALL" : "NONE" };
}

/**
 * The options of a `muster run` inside a job (MUSTER_JOB_ID set), completed as srun completes its
 * own from SLURM_NTASKS: without -n (and without --ntasks-per-node) it runs as many tasks as its
 * job's allocation holds (MUSTER_NTASKS of the batch script), which fill that allocation's nodes.
 */
export function jobDefaults<O extends Readonly<Record<string, string | number | boolean>>>(options: O, env: Readonly<Record<string, string | undefined>>): O {
  if (!env.MUSTER_JOB_ID || options.ntasks !== undefined || options["ntasks-per-node"] !== undefined) return options;
  const n = env.MUSTER_NTASKS;
  if (n === undefined || !/^[1-9]\d*$/.test(n)) return options;
  return { ...options, ntasks: Number(n) };
}

/** `-w/--nodelist`: the named nodes, hostlist syntax (`node-[1-3],node-7`); throws USAGE. */
export function nodelistOption(command: string, text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  try {
    return expandHostlist(text);
  } catch (err) {
    throw new MusterError("USAGE", `${command}: option --nodelist: ${(err as Error).message}`);
  }
}

/** The tasks' working directory: `-D DIR` relative to `cwd`, else `cwd`. */
export function chdirOption(cwd: string, dir: string | undefined): string {
  return dir === undefined ? cwd : resolve(cwd, dir);
}

/** Where a submission comes from (SLURM_SUBMIT_DIR, SLURM_SUBMIT_HOST). */
export function submitOrigin(cwd: string): { submitDir: string; submitHost: string } {
  return { submitDir: cwd, submitHost: hostname() };
}

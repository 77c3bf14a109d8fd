/**
 * Small helpers shared by the benchmark runner and its peer processes: statistics, /proc readings,
 * child processes that announce readiness on a line, and the bench's own control subjects.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

/** The repository root (bin/, dist/, node_modules/). */
export const ROOT = resolve(import.meta.dirname, "../..");
/** The built CLI entry point. */
export const MUSTER_BIN = resolve(ROOT, "bin/muster.js");
/** The tsx loader, so the bench's own TypeScript peers run without a build step. */
export const TSX = ["--import", "tsx"];

/** One figure of the bench: muster's value beside its reference measured in the same run, and its target. */
export interface BenchRow {
  readonly group: string;
  readonly name: string;
  readonly unit: "ms" | "ev/s" | "B" | "B/task" | "MB";
  readonly muster: number;
  readonly raw?: number;
  readonly rawName?: string;
  /** The same figure for Slurm's srun, measured in the same run (real-path group, when a Slurm answers). */
  readonly srun?: number;
  /** Target as text, and whether it passed. */
  readonly target?: string;
  readonly pass?: boolean;
}

/** Monotonic milliseconds with sub-millisecond resolution. */
export function now(): number {
  return performance.now();
}

/** The q-quantile (0..1) of the values, nearest-rank on a sorted copy. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const idx = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return s[idx]!;
}

/** The median. */
export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

/** Resident set size of a process, bytes (VmRSS of /proc/<pid>/status); undefined when gone. */
export function rssOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Peak resident set size of a process so far, bytes (VmHWM). */
export function peakRssOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** CPU time (user+system) a process used so far, ms (from /proc/<pid>/stat, clock ticks of 10 ms). */
export function cpuMsOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves when `cond` is true; polls every `intervalMs`; rejects after `timeoutMs` naming `what`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 20): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`bench: timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** A child process whose output is kept (last 400 lines) and scanned for a readiness line. */
export interface Peer {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  /** Resolves with the first output line matching `re`. */
  waitLine(re: RegExp, timeoutMs?: number): Promise<string>;
  output(): string;
  /** SIGTERM, SIGKILL after `graceMs`; resolves on exit. */
  stop(graceMs?: number): Promise<void>;
  exited(): boolean;
}

const live = new Set<ChildProcess>();
let hooked = false;
function track(p: ChildProcess): void {
  live.add(p);
  p.once("exit", () => live.delete(p));
  if (hooked) return;
  hooked = true;
  process.on("exit", () => {
    for (const c of live) c.kill("SIGKILL");
  });
}

/** Starts `node ...args` with `env` added to this process's environment. */
export function startPeer(name: string, nodeArgs: readonly string[], env: Record<string, string> = {}): Peer {
  const proc = spawn(process.execPath, [...nodeArgs], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  track(proc);
  const lines: string[] = [];
  const waiters: { re: RegExp; done: (l: string) => void }[] = [];
  let partial = "";
  const onData = (d: Buffer) => {
    const parts = (partial + d.toString("utf8")).split("\n");
    partial = parts.pop() ?? "";
    for (const l of parts) {
      lines.push(l);
      if (lines.length > 400) lines.shift();
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i]!.re.test(l)) {
          waiters[i]!.done(l);
          waiters.splice(i, 1);
        }
      }
    }
  };
  proc.stdout!.on("data", onData);
  proc.stderr!.on("data", onData);
  const exited = () => proc.exitCode !== null || proc.signalCode !== null;
  return {
    name,
    proc,
    pid: proc.pid!,
    output: () => [...lines, partial].join("\n"),
    exited,
    waitLine(re, timeoutMs = 20_000) {
      const seen = lines.find((l) => re.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise((res, rej) => {
        const t = setTimeout(() => rej(new Error(`bench: ${name} did not print ${re} within ${timeoutMs} ms\n${lines.slice(-30).join("\n")}`)), timeoutMs);
        const w = { re, done: (l: string) => (clearTimeout(t), res(l)) };
        waiters.push(w);
        proc.once("exit", (code, sig) => {
          clearTimeout(t);
          rej(new Error(`bench: ${name} exited (${code ?? sig}) before printing ${re}\n${lines.slice(-30).join("\n")}`));
        });
      });
    },
    stop(graceMs = 10_000) {
      if (exited()) return Promise.resolve();
      return new Promise((res) => {
        const t = setTimeout(() => proc.kill("SIGKILL"), graceMs);
        proc.once("exit", () => {
          clearTimeout(t);
          res();
        });
        proc.kill("SIGCONT");
        proc.kill("SIGTERM");
      });
    },
  };
}

/** Bench control subjects (core NATS request/reply between the runner and its peers). */
export function benchSubject(runId: string, peer: string, op: string): string {
  return `bench.${runId}.${peer}.${op}`;
}

export const enc = new TextEncoder();
export const dec = new TextDecoder();

/** Formats bytes as KiB/MiB. */
export function fmtBytes(n: number): string {
  if (!Number.isFinite(n)) return "n/a";
  if (Math.abs(n) >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  if (Math.abs(n) >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${Math.round(n)} B`;
}

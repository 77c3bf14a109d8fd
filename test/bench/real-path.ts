/**
 * The real-path group of `npm run bench` (issue #16): a local cluster of two real agents running
 * real processes, steps of 1,000 and 4,000 `sh` tasks with one failing rank. It measures the
 * first-failure latency from the failing task's exit (the agent's `trigger.at`) to the notification
 * reaching a subscriber, submit → every task started, and the whole `muster run`; and the CLI's
 * figures (`--help`, `run -n 1`, `run -n 8`, `run -n 1000`), each beside `node -e 0` and, when a
 * Slurm answers on this machine (`sinfo`), beside `srun` measured in the same run.
 */
import { spawn, spawnSync } from "node:child_process";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { createSubjects, type Subjects } from "../../src/protocol/index.js";
import { startCluster, type Cluster } from "../support/cluster.js";
import { median, MUSTER_BIN, now, quantile, ROOT, type BenchRow } from "./lib.js";

/** A figure of the real-path group. */
export type RealPathRow = BenchRow;

/** Sizes of one run of the group. */
export interface RealPathSizes {
  /** Failing ranks of the 1,000-task steps, one step each (rank 0 fails while the others still start). */
  readonly ranks1000: readonly number[];
  /** Failing ranks of the 4,000-task steps. */
  readonly ranks4000: readonly number[];
  /** Timed runs of each CLI figure (after one warm-up). */
  readonly cliRuns: number;
  /** Timed `run -n 1000 -- true` runs. */
  readonly bigRuns: number;
}

/** The sizes of a full and a quick run. */
export const REAL_PATH_SIZES: Record<"full" | "quick", RealPathSizes> = {
  full: { ranks1000: [0, 1, 250, 500, 777, 998, 999, 0], ranks4000: [0, 1999, 3999, 0], cliRuns: 7, bigRuns: 3 },
  quick: { ranks1000: [0, 777, 999], ranks4000: [0, 3999], cliRuns: 3, bigRuns: 2 },
};

/** What one failing step measured. */
export interface FailingStep {
  readonly ntasks: number;
  readonly failRank: number;
  /** The failing task's exit (its `trigger.at`) → the notification at a core subscriber, ms. */
  readonly firstFailureMs: number;
  /** The failing task's exit → its `task.ended` stored in JetStream (the stored message's timestamp), ms. */
  readonly exitToStoredMs: number | undefined;
  /** The failing task's exit → the supervisor's publication of the notification (its `publishedAt`), ms. */
  readonly exitToPublishedMs: number;
  /** Tasks the notification still shows as not started (`pending`/`launching`). */
  readonly notStartedInPicture: number;
  /** The job's submit (the supervisor's `submittedAt`) → the last task's start (its agent's `startedAt`), ms. */
  readonly submitToAllStartedMs: number;
  /** The whole `muster run`, ms. */
  readonly runMs: number;
}

const FAIL_SCRIPT = '[ "$MUSTER_TASK_ID" = "$FAIL_RANK" ] && exit 3; exit 0';

/** Times a process to its exit. */
function timed(cmd: string, args: readonly string[], env: Record<string, string> = {}): Promise<{ ms: number; code: number | null; out: string }> {
  return new Promise((res) => {
    const t0 = now();
    const p = spawn(cmd, [...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    p.once("error", (err) => res({ ms: now() - t0, code: -1, out: err.message }));
    p.once("close", (code) => res({ ms: now() - t0, code, out }));
  });
}

/** True when a Slurm controller answers on this machine. */
export function slurmAnswers(): boolean {
  const r = spawnSync("sinfo", ["-h", "-o", "%D"], { timeout: 10_000, encoding: "utf8" });
  return r.status === 0 && Number.parseInt(r.stdout.trim(), 10) > 0;
}

/** Watches the notifications (a core subscription, as `muster run` and watchers have). */
class Watcher {
  readonly subjects: Subjects;
  readonly notifications = new Map<string, { at: number; msg: Record<string, unknown> }>();

  constructor(
    nc: NatsConnection,
    prefix: string,
    readonly jsm: JetStreamManager,
  ) {
    this.subjects = createSubjects(prefix);
    nc.subscribe(this.subjects.job.exitCodesAll, {
      callback: (_e, m) => {
        const at = Date.now();
        const msg = m.json<Record<string, unknown>>();
        if (msg.type === "step.first_failure") this.notifications.set(String(msg.job), { at, msg });
      },
    });
  }
}

function notStarted(msg: Record<string, unknown>): number {
  let n = 0;
  const add = (groups: unknown) => {
    for (const [k, v] of Object.entries((groups ?? {}) as Record<string, string | number>)) {
      if (!k.startsWith("pending") && !k.startsWith("launching")) continue;
      n += typeof v === "number" ? v : v.split(",").reduce((s, r) => {
        const [a, b] = r.split("-").map(Number);
        return s + (b === undefined ? 1 : b - a! + 1);
      }, 0);
    }
  };
  add(msg.groups);
  add(msg.counts);
  return n;
}

/** Runs one failing step through the CLI and measures it. */
async function failingStep(cluster: Cluster, w: Watcher, ntasks: number, failRank: number): Promise<FailingStep> {
  const t0 = now();
  const r = await cluster.muster(["run", "-v", "-N", "2", "-n", String(ntasks), "--", "sh", "-c", FAIL_SCRIPT], { env: { FAIL_RANK: String(failRank) }, timeoutMs: 180_000 });
  const runMs = now() - t0;
  if (r.code !== 3) throw new Error(`run -n ${ntasks} (rank ${failRank} fails) exited ${r.code}, expected 3: ${r.stderr.slice(-2000)}`);
  const job = /muster: job (\S+):/.exec(r.stderr)?.[1];
  if (!job) throw new Error(`no job id in: ${r.stderr.slice(0, 500)}`);
  const n = w.notifications.get(job);
  if (!n) throw new Error(`job ${job}: no first-failure notification seen`);
  const trigger = n.msg.trigger as { rank: number; at: number; node: string };
  if (trigger.rank !== failRank) throw new Error(`job ${job}: trigger rank ${trigger.rank}, expected ${failRank}`);
  // Every task's start as its agent stamped it (the exec), against the job's submit time at the supervisor.
  const view = (await cluster.ctl("query", { type: "query", v: 1, what: "job", job })) as {
    submittedAt: number;
    steps: { tasks: { startedAt?: number }[] }[];
  };
  const starts = view.steps[0]!.tasks.map((t) => t.startedAt).filter((t): t is number => t !== undefined);
  if (starts.length !== ntasks) throw new Error(`job ${job}: ${starts.length} tasks with a start time of ${ntasks}`);
  const stored = await w.jsm.streams
    .getMessage(w.subjects.streams.events.name, { last_by_subj: w.subjects.evt.task(trigger.node, job, 0, failRank) })
    .catch(() => undefined);
  return {
    ntasks,
    failRank,
    exitToStoredMs: stored ? Date.parse(stored.timestamp) - trigger.at : undefined,
    firstFailureMs: n.at - trigger.at,
    exitToPublishedMs: Number(n.msg.publishedAt) - trigger.at,
    notStartedInPicture: notStarted(n.msg),
    submitToAllStartedMs: Math.max(...starts) - view.submittedAt,
    runMs,
  };
}

/** The real-path group: returns its rows and details. */
export async function realPathGroup(sizes: RealPathSizes, log: (s: string) => void): Promise<{ rows: RealPathRow[]; details: Record<string, unknown> }> {
  const rows: RealPathRow[] = [];
  const add = (row: RealPathRow): void => {
    rows.push(row);
    const ref = row.raw === undefined ? "" : ` (${row.rawName} ${row.raw.toFixed(0)} ms${row.srun === undefined ? "" : `, srun ${row.srun.toFixed(0)} ms`})`;
    log(`${row.name}: ${row.muster.toFixed(0)} ms${ref}${row.target ? ` target ${row.target}: ${row.pass ? "pass" : "MISS"}` : ""}`);
  };
  const slurm = slurmAnswers();
  log(`real: starting a local cluster (nats-server, supervisor, 2 agents with 2,000 slots each); Slurm ${slurm ? "answers" : "not found: srun column empty"}`);
  const cluster = await startCluster({
    agents: 2,
    slots: 2000,
    env: { MUSTER_LOG_LEVEL: "info", MUSTER_HEARTBEAT_INTERVAL: "2", MUSTER_NODE_TIMEOUT: "10" },
  });
  const details: Record<string, unknown> = { slurm };
  try {
    const nc = await cluster.connection();
    const w = new Watcher(nc, cluster.prefix, await jetstreamManager(nc));
    await nc.flush();

    // Failing steps: the warm-up is a small one.
    await failingStep(cluster, w, 100, 50);
    const steps: FailingStep[] = [];
    for (const [ntasks, ranks] of [
      [1000, sizes.ranks1000],
      [4000, sizes.ranks4000],
    ] as const) {
      for (const rank of ranks) {
        const s = await failingStep(cluster, w, ntasks, rank);
        log(`real: ${ntasks} tasks, rank ${rank} fails: first failure ${s.firstFailureMs} ms after its exit (stored after ${s.exitToStoredMs ?? "?"} ms, published after ${s.exitToPublishedMs} ms; ${s.notStartedInPicture} not started yet), all started ${s.submitToAllStartedMs} ms after submit, run ${s.runMs.toFixed(0)} ms`);
        steps.push(s);
      }
    }
    details.steps = steps;
    for (const [ntasks, limit] of [
      [1000, 50],
      [4000, 100],
    ] as const) {
      const of = steps.filter((s) => s.ntasks === ntasks);
      const ff = of.map((s) => s.firstFailureMs);
      const p99 = quantile(ff, 0.99);
      add({ group: "real", name: `${ntasks} tasks: first failure p50 (${ff.length} steps)`, unit: "ms", muster: quantile(ff, 0.5) });
      add({ group: "real", name: `${ntasks} tasks: first failure p99 (exit -> subscriber)`, unit: "ms", muster: p99, target: `<= ${limit} ms`, pass: p99 <= limit });
      const rank0 = of.filter((s) => s.failRank === 0).map((s) => s.firstFailureMs);
      if (rank0.length) add({ group: "real", name: `${ntasks} tasks: first failure while others start (rank 0, max)`, unit: "ms", muster: Math.max(...rank0), target: `<= ${limit} ms`, pass: Math.max(...rank0) <= limit });
      add({ group: "real", name: `${ntasks} tasks: submit -> all started (median)`, unit: "ms", muster: median(of.map((s) => s.submitToAllStartedMs)) });
      add({ group: "real", name: `${ntasks} tasks: whole run, one rank fails (median)`, unit: "ms", muster: median(of.map((s) => s.runMs)) });
    }

    // The CLI beside node -e 0 and srun, interleaved so that load spikes hit both alike.
    const runs = sizes.cliRuns;
    const muster = (args: string[]) => timed(process.execPath, [MUSTER_BIN, ...args], cluster.env);
    const figures = {
      node: [] as number[],
      help: [] as number[],
      run1: [] as number[],
      run8: [] as number[],
      srunHelp: [] as number[],
      srun1: [] as number[],
      srun8: [] as number[],
    };
    log(`real: --help, run -n 1, run -n 8 beside node -e 0${slurm ? " and srun" : ""} (median of ${runs} after one warm-up)`);
    for (let i = 0; i <= runs; i++) {
      const take = async (key: keyof typeof figures, p: Promise<{ ms: number; code: number | null; out: string }>, what: string): Promise<void> => {
        const r = await p;
        if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.out.slice(-500)}`);
        if (i > 0) figures[key].push(r.ms);
      };
      await take("node", timed(process.execPath, ["-e", "0"]), "node -e 0");
      await take("help", muster(["--help"]), "muster --help");
      await take("run1", muster(["run", "-n", "1", "--", "true"]), "muster run -n 1");
      await take("run8", muster(["run", "-n", "8", "--", "true"]), "muster run -n 8");
      if (slurm) {
        await take("srunHelp", timed("srun", ["--help"]), "srun --help");
        await take("srun1", timed("srun", ["-n", "1", "true"]), "srun -n 1");
        await take("srun8", timed("srun", ["-n", "8", "true"]), "srun -n 8");
      }
    }
    const nodeMs = median(figures.node);
    const srunOf = (v: number[]) => (v.length ? median(v) : undefined);
    const cli = (name: string, v: number[], srun: number[], factor: number) => {
      const m = median(v);
      add({ group: "real", name, unit: "ms", muster: m, raw: nodeMs, rawName: "node -e 0", srun: srunOf(srun), target: `<= ${factor}x node -e 0`, pass: m <= factor * nodeMs });
    };
    cli("muster --help", figures.help, figures.srunHelp, 1.2);
    cli("muster run -n 1 -- true", figures.run1, figures.srun1, 1.5);
    cli("muster run -n 8 -- true", figures.run8, figures.srun8, 2);

    log(`real: run -n 1000 -- true${slurm ? " beside srun -O -N 3 -n 1000 true" : ""} (median of ${sizes.bigRuns} after one warm-up)`);
    const big: number[] = [];
    const srunBig: number[] = [];
    for (let i = 0; i <= sizes.bigRuns; i++) {
      const r = await muster(["run", "-N", "2", "-n", "1000", "--", "true"]);
      if (r.code !== 0) throw new Error(`muster run -n 1000 exited ${r.code}: ${r.out.slice(-500)}`);
      if (i > 0) big.push(r.ms);
      if (slurm) {
        const s = await timed("srun", ["-O", "-N", "3", "-n", "1000", "true"]);
        if (s.code === 0 && i > 0) srunBig.push(s.ms);
        else if (s.code !== 0) log(`real: srun -n 1000 exited ${s.code}: ${s.out.split("\n").slice(-2).join(" ")}`);
      }
    }
    const bigMs = median(big);
    const srunBigMs = srunOf(srunBig);
    add({
      group: "real",
      name: "muster run -n 1000 -- true (2 agents)",
      unit: "ms",
      muster: bigMs,
      raw: nodeMs,
      rawName: "node -e 0",
      srun: srunBigMs,
      target: srunBigMs === undefined ? "<= 2 s" : "<= 2 s and <= srun",
      pass: bigMs <= 2000 && (srunBigMs === undefined || bigMs <= srunBigMs),
    });
    details.cli = { ...figures, run1000: big, srun1000: srunBig };
  } finally {
    await cluster.stop();
  }
  return { rows, details };
}

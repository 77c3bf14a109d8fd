/**
 * Kill, signals and time limits end to end: `muster kill` (TERM, KillWait, KILL, a second kill,
 * --kill-wait, --signal), -K, --wait, --time, ownership, Ctrl-C/SIGTERM on `muster run`, and a kill
 * whose agent is frozen. Real nats-server, supervisor and agents, real task processes.
 */
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobOf, startCluster, type Cluster } from "../support/cluster.js";
import { gone, processTree } from "../support/processes.js";
import { waitFor } from "../support/wait.js";

let c: Cluster;

beforeAll(async () => {
  c = await startCluster({ agents: 2, slots: 8 });
}, 60_000);

afterAll(async () => {
  await c?.stop();
});

/** A shell command that ignores SIGTERM; `sleep` inherits the ignored disposition (SIG_IGN survives fork and exec). */
const IGNORE_TERM = ["sh", "-c", "trap '' TERM; sleep 600 & wait"];

interface TaskView {
  rank: number;
  node: string;
  state: string;
  pid?: number;
  outcome?: { kind: string; code?: number; signal?: number };
  killedByRuntime: boolean;
  startedAt?: number;
  endedAt?: number;
}

async function view(job: string): Promise<any> {
  return c.ctl("query", { type: "query", v: 1, what: "job", job });
}

async function tasksOf(job: string): Promise<TaskView[]> {
  return (await view(job)).steps[0].tasks as TaskView[];
}

/** Waits until every task of the job runs (has a pid), and returns the tasks. */
async function allRunning(job: string, n: number): Promise<TaskView[]> {
  return waitFor(
    async () => {
      const ts = await tasksOf(job);
      return ts.length === n && ts.every((t) => t.state === "running" && t.pid) ? ts : undefined;
    },
    { timeoutMs: 15_000, message: `${n} tasks of ${job} running` },
  );
}

function lastEnd(tasks: TaskView[]): number {
  return Math.max(...tasks.map((t) => t.endedAt ?? 0));
}

describe("muster kill", () => {
  it("cancels a running job: muster run returns, CANCELLED, the task processes are gone", async () => {
    const run = c.start(["run", "-v", "-n", "2", "--", "sleep", "600"]);
    const job = await jobOf(run);
    const pids = (await allRunning(job, 2)).flatMap((t) => processTree(t.pid!));
    expect(pids.every((p) => !gone(p))).toBe(true);
    const t0 = Date.now();
    const k = await c.muster(["kill", job]);
    expect(k.code, k.stderr).toBe(0);
    const r = await run.done;
    const returned = Date.now();
    expect(r.code, r.stderr).toBeGreaterThanOrEqual(1);
    const v = await c.showJob(job);
    expect(v.state).toBe("CANCELLED");
    const tasks = v.steps[0].tasks as TaskView[];
    for (const t of tasks) expect(t).toMatchObject({ state: "signaled", outcome: { kind: "signaled", signal: 15 }, killedByRuntime: true });
    await waitFor(() => pids.every(gone), { timeoutMs: 5000, message: `pids ${pids.join(",")} gone` });
    console.log(`kill → CANCELLED (job end) ${v.endedAt - t0} ms, kill → muster run returned ${returned - t0} ms (exit ${r.code})`);
  });

  it("tasks that ignore SIGTERM get SIGKILL after the job's KillWait; a second kill ends them at once", async () => {
    const run = c.start(["run", "-v", "-n", "2", "--kill-wait", "2", "--", ...IGNORE_TERM]);
    const job = await jobOf(run);
    const pids = (await allRunning(job, 2)).flatMap((t) => processTree(t.pid!));
    expect(pids.length).toBeGreaterThanOrEqual(4); // sh and its sleep, twice
    const t0 = Date.now();
    expect((await c.muster(["kill", job])).code).toBe(0);
    await delay(1000);
    expect(pids.filter(gone), "SIGTERM is ignored by sh and sleep").toEqual([]);
    expect((await view(job)).state).not.toBe("CANCELLED");
    const r = await run.done;
    expect(r.code, r.stderr).toBeGreaterThanOrEqual(1);
    const v = await c.showJob(job);
    const tasks = v.steps[0].tasks as TaskView[];
    const gap = lastEnd(tasks) - t0;
    console.log(`KillWait 2 s: kill → SIGKILL'd task end ${gap} ms`);
    expect(gap).toBeGreaterThanOrEqual(1500);
    expect(gap).toBeLessThanOrEqual(6000);
    expect(v.state).toBe("CANCELLED");
    for (const t of tasks) expect(t).toMatchObject({ outcome: { kind: "signaled", signal: 9 }, killedByRuntime: true });
    await waitFor(() => pids.every(gone), { timeoutMs: 5000, message: `pids ${pids.join(",")} gone` });

    // A second kill during the wait escalates to SIGKILL at once.
    const run2 = c.start(["run", "-v", "-n", "2", "--kill-wait", "30", "--", ...IGNORE_TERM]);
    const job2 = await jobOf(run2);
    await allRunning(job2, 2);
    expect((await c.muster(["kill", job2])).code).toBe(0);
    await delay(500);
    const t1 = Date.now();
    expect((await c.muster(["kill", job2])).code).toBe(0);
    const r2 = await run2.done;
    const v2 = await c.showJob(job2);
    const second = lastEnd(v2.steps[0].tasks) - t1;
    console.log(`second kill → task end ${second} ms (KillWait 30 s)`);
    expect(second).toBeLessThan(1500);
    expect(r2.code).toBeGreaterThanOrEqual(1);
    expect(v2.state).toBe("CANCELLED");
  });

  it("--kill-wait on muster kill overrides the job's KillWait", async () => {
    const run = c.start(["run", "-v", "-n", "2", "--kill-wait", "30", "--", ...IGNORE_TERM]);
    const job = await jobOf(run);
    await allRunning(job, 2);
    const t0 = Date.now();
    expect((await c.muster(["kill", "--kill-wait", "1", job])).code).toBe(0);
    const r = await run.done;
    const v = await c.showJob(job);
    const gap = lastEnd(v.steps[0].tasks) - t0;
    console.log(`kill --kill-wait 1 (job KillWait 30): kill → task end ${gap} ms`);
    expect(gap).toBeGreaterThanOrEqual(800);
    expect(gap).toBeLessThan(4000);
    expect(r.code).toBeGreaterThanOrEqual(1);
    expect(v.state).toBe("CANCELLED");
    for (const t of v.steps[0].tasks as TaskView[]) expect(t.outcome).toMatchObject({ kind: "signaled", signal: 9 });
  });

  it("--signal USR1 delivers the signal without ending the job", async () => {
    const run = c.start(["run", "-v", "-l", "-n", "2", "--", "sh", "-c", 'trap "echo got-usr1" USR1; echo ready; while :; do sleep 0.2; done']);
    const job = await jobOf(run);
    await allRunning(job, 2);
    await waitFor(() => (run.stdout().match(/ready/g) ?? []).length === 2, { timeoutMs: 10_000, message: "both tasks ready" });
    const k = await c.muster(["kill", "--signal", "USR1", job]);
    expect(k.code, k.stderr).toBe(0);
    await waitFor(() => run.stdout().includes("0: got-usr1") && run.stdout().includes("1: got-usr1"), { timeoutMs: 10_000, message: "both tasks trapped USR1" });
    await delay(500);
    const v = await view(job);
    expect(v.state).toBe("RUNNING");
    expect(v.steps[0].tasks.every((t: TaskView) => t.state === "running")).toBe(true);
    expect(run.proc.exitCode).toBeNull();
    expect((await c.muster(["kill", job])).code).toBe(0);
    const r = await run.done;
    expect(r.code).toBeGreaterThanOrEqual(1);
    expect((await c.showJob(job)).state).toBe("CANCELLED");
  });

  it("a user who does not own the job cannot kill or signal it", async () => {
    const run = c.start(["run", "-v", "-n", "1", "--", "sleep", "600"]);
    const job = await jobOf(run);
    await allRunning(job, 1);
    const mallory = { env: { MUSTER_USER: "mallory" } };
    for (const args of [["kill", job], ["kill", "--signal", "USR1", job], ["kill", "--kill-wait", "0", job]]) {
      const r = await c.muster(args, mallory);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^muster: error: .*job ${job} belongs to alice, not mallory\\n$`));
    }
    await delay(300);
    const v = await view(job);
    expect(v.state).toBe("RUNNING");
    expect(v.steps[0].tasks[0].state).toBe("running");
    expect((await c.muster(["kill", job])).code).toBe(0);
    expect((await run.done).code).toBeGreaterThanOrEqual(1);
    expect((await c.showJob(job)).state).toBe("CANCELLED");
  });
});

describe("policies", () => {
  it("-K: the first bad exit kills the rest; exit 7, FAILED, 7:0, the others killedByRuntime", async () => {
    const t0 = Date.now();
    const r = await c.muster(["run", "-v", "-K", "-n", "4", "--", "sh", "-c", '[ "$MUSTER_TASK_ID" = 1 ] && exit 7; exec sleep 600']);
    const took = Date.now() - t0;
    console.log(`-K: muster run took ${took} ms`);
    expect(r.code, r.stderr).toBe(7);
    expect(took).toBeLessThan(10_000);
    const v = await c.showJob(/muster: job (\S+):/.exec(r.stderr)![1]!);
    expect([v.state, v.reason, v.exitCode]).toEqual(["FAILED", "NonZeroExitCode", "7:0"]);
    for (const t of v.steps[0].tasks as TaskView[]) {
      if (t.rank === 1) expect(t).toMatchObject({ outcome: { kind: "exited", code: 7 }, killedByRuntime: false });
      else expect(t).toMatchObject({ outcome: { kind: "signaled", signal: 15 }, killedByRuntime: true });
    }
  });

  it("--wait 2: once rank 0 exits, the rest get SIGKILL about 2 s later, and count (FAILED 0:9, exit 137)", async () => {
    const r = await c.muster(["run", "-v", "-W", "2", "-n", "3", "--", "sh", "-c", '[ "$MUSTER_TASK_ID" = 0 ] && exit 0; exec sleep 600']);
    const v = await c.showJob(/muster: job (\S+):/.exec(r.stderr)![1]!);
    const tasks = v.steps[0].tasks as TaskView[];
    const first = tasks.find((t) => t.rank === 0)!;
    expect(first).toMatchObject({ outcome: { kind: "exited", code: 0 }, killedByRuntime: false });
    const gap = lastEnd(tasks) - first.endedAt!;
    console.log(`--wait 2: rank 0's exit → the others' SIGKILL end ${gap} ms; state ${v.state} ${v.exitCode}, run exit ${r.code}`);
    expect(gap).toBeGreaterThanOrEqual(1500);
    expect(gap).toBeLessThanOrEqual(5000);
    for (const t of tasks.filter((x) => x.rank !== 0)) expect(t).toMatchObject({ outcome: { kind: "signaled", signal: 9 }, killedByRuntime: false });
    expect([v.state, v.exitCode, r.code]).toEqual(["FAILED", "0:9", 137]);
  });

  it("--time 0:03 ends sleep 600 with TIMEOUT, TimeLimit", async () => {
    const t0 = Date.now();
    const r = await c.muster(["run", "-v", "--time", "0:03", "--", "sleep", "600"]);
    const took = Date.now() - t0;
    expect(r.code, r.stderr).toBeGreaterThanOrEqual(1);
    const v = await c.showJob(/muster: job (\S+):/.exec(r.stderr)![1]!);
    console.log(`--time 0:03: muster run took ${took} ms, exit ${r.code}, ${v.state} ${v.reason} ${v.exitCode}`);
    expect([v.state, v.reason]).toEqual(["TIMEOUT", "TimeLimit"]);
    expect(v.steps[0].tasks[0]).toMatchObject({ outcome: { kind: "signaled", signal: 15 }, killedByRuntime: true });
    expect(took).toBeGreaterThanOrEqual(3000);
    expect(took).toBeLessThan(8000);
  });
});

describe("signals to muster run", () => {
  it("one Ctrl-C prints the tasks' status; two within 1 s cancel the job", async () => {
    const run = c.start(["run", "-v", "-n", "2", "--", "sleep", "600"]);
    const job = await jobOf(run);
    await allRunning(job, 2);
    run.proc.kill("SIGINT");
    await waitFor(() => run.stderr().includes("one more within 1 sec"), { timeoutMs: 10_000, message: "the Ctrl-C status" });
    expect(run.stderr()).toContain(`muster: StepId=${job}.0 RUNNING\nmuster:   running: 0-1\nmuster: interrupt (one more within 1 sec to abort)\n`);
    await delay(1200);
    expect((await view(job)).state).toBe("RUNNING");
    expect(run.proc.exitCode).toBeNull();
    run.proc.kill("SIGINT");
    await delay(100);
    run.proc.kill("SIGINT");
    const r = await run.done;
    expect(r.code, r.stderr).toBeGreaterThanOrEqual(1);
    expect(r.stderr).toContain(`aborting job ${job}`);
    expect((await c.showJob(job)).state).toBe("CANCELLED");
  });

  it("SIGTERM to muster run cancels the job", async () => {
    const run = c.start(["run", "-v", "-n", "2", "--", "sleep", "600"]);
    const job = await jobOf(run);
    await allRunning(job, 2);
    run.proc.kill("SIGTERM");
    const r = await run.done;
    expect(r.code, r.stderr).toBeGreaterThanOrEqual(1);
    expect((await c.showJob(job)).state).toBe("CANCELLED");
  });
});

describe("a kill whose agent is frozen", () => {
  // The frozen node is also lost after nodeTimeout (no heartbeats), which comes first: the tasks being
  // killed are then finalised as killed without confirmation, within the KillWait + nodeTimeout bound.
  it("is finalised as KillUnconfirmed within KillWait + nodeTimeout: CANCELLED, signaled 9 killedByRuntime; muster run returns", async () => {
    const run = c.start(["run", "-v", "-N", "1", "-n", "2", "--kill-wait", "2", "--", ...IGNORE_TERM]);
    const job = await jobOf(run);
    const tasks = await allRunning(job, 2);
    const node = tasks[0]!.node;
    const agent = c.agents.get(node)!;
    const pids = tasks.flatMap((t) => processTree(t.pid!));
    const t0 = Date.now();
    expect((await c.muster(["kill", job])).code).toBe(0);
    agent.kill("SIGSTOP");
    try {
      const r = await run.done;
      const returned = Date.now() - t0;
      const v = await c.showJob(job);
      console.log(`frozen agent (KillWait 2 s, nodeTimeout 3 s): kill → job end ${v.endedAt - t0} ms, → muster run returned ${returned} ms; ${v.state} ${v.exitCode}`);
      expect(r.code, r.stderr).toBe(128 + 9);
      expect([v.state, v.reason, v.exitCode]).toEqual(["CANCELLED", "None", "0:9"]);
      expect(v.endedAt - t0).toBeLessThanOrEqual(2000 + 3000 + 1000);
      expect(returned).toBeLessThan(2000 + 3000 + 3000);
      for (const t of v.steps[0].tasks as TaskView[]) expect(t).toMatchObject({ state: "signaled", outcome: { kind: "signaled", signal: 9 }, killedByRuntime: true });
      expect(c.logs("supervisor")).toMatch(/"msg":"kill\.unconfirmed"/);
    } finally {
      agent.kill("SIGCONT");
    }
    await waitFor(() => pids.every(gone), { timeoutMs: 10_000, message: "the frozen agent's tasks are killed once it runs again" });
  });
});

/**
 * Where muster follows srun end to end: `--ntasks-per-node` task counts, `--wait` kills that count
 * (FAILED 0:9, exit 137), a node failure that ends the step (and `--no-kill` that keeps it), and the
 * `*** STEP … CANCELLED AT … ***` / `*** JOB … ***` lines of a cancel, a time limit and a node
 * failure. Real nats-server, supervisor and agents, real task processes.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { jobOf, startCluster, type Cluster } from "../support/cluster.js";
import { gone, processTree } from "../support/processes.js";
import { waitFor } from "../support/wait.js";

/** A `*** STEP|JOB … ***` line with its local timestamp, as a pattern. */
const stopLinePattern = (entity: string, node: string, due = "") =>
  new RegExp(`muster: error: \\*\\*\\* ${entity.replace(".", "\\.")} ON ${node} CANCELLED AT \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d${due ? ` DUE TO ${due}` : ""} \\*\\*\\*\\n`);

async function tasksOf(c: Cluster, job: string): Promise<any[]> {
  return (await c.ctl("query", { type: "query", v: 1, what: "job", job })).steps[0].tasks as any[];
}

/** Waits until the job's `n` tasks run (each with a pid), and returns them. */
async function allRunning(c: Cluster, job: string, n: number): Promise<any[]> {
  return waitFor(
    async () => {
      const ts = await tasksOf(c, job);
      return ts.length === n && ts.every((t) => t.state === "running" && t.pid) ? ts : undefined;
    },
    { timeoutMs: 20_000, message: `${n} tasks of ${job} running` },
  );
}

describe("on a shared cluster", () => {
  let c: Cluster;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "muster-srun-"));
    c = await startCluster({ agents: 3, slots: 4 });
  }, 60_000);
  afterAll(async () => {
    await c?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe("--ntasks-per-node as srun computes it", () => {
    it("-N 2 --ntasks-per-node 2 runs 4 tasks, 2 on each of 2 nodes", async () => {
      const r = await c.muster(["run", "-N", "2", "--ntasks-per-node", "2", "--", "sh", "-c", 'echo "$MUSTER_TASK_ID $MUSTER_NODE $MUSTER_NTASKS"']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toBe("");
      expect(r.stdout.trim().split("\n").sort()).toEqual(["0 node-1 4", "1 node-1 4", "2 node-2 4", "3 node-2 4"]);
    });

    it("--ntasks-per-node 2 alone runs 2 tasks on one node; -N 2 alone runs 2 tasks", async () => {
      const one = await c.muster(["run", "--ntasks-per-node", "2", "--", "sh", "-c", 'echo "$MUSTER_TASK_ID $MUSTER_NNODES"']);
      expect(one.code, one.stderr).toBe(0);
      expect(one.stdout.trim().split("\n").sort()).toEqual(["0 1", "1 1"]);
      const two = await c.muster(["run", "-N", "2", "--", "sh", "-c", 'echo "$MUSTER_TASK_ID $MUSTER_NNODES"']);
      expect(two.code, two.stderr).toBe(0);
      expect(two.stdout.trim().split("\n").sort()).toEqual(["0 2", "1 2"]);
    });

    it("fewer tasks than nodes: srun's warning, and the node count shrinks", async () => {
      const r = await c.muster(["run", "-n", "2", "-N", "3", "--", "sh", "-c", 'echo "$MUSTER_NNODES"']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toBe("muster: warning: can't run 2 processes on 3 nodes, setting nnodes to 2\n");
      expect(r.stdout).toBe("2\n2\n");
    });
  });

  it("-W 2: rank 0 exits 0 at once, the rest SIGKILLed by the wait: exit 137, FAILED 0:9 RaisedSignal:9(Killed)", async () => {
    const r = await c.muster(["run", "-v", "-n", "4", "-W", "2", "--", "sh", "-c", '[ "$MUSTER_TASK_ID" = 0 ] && exit 0; exec sleep 60']);
    expect(r.code, r.stderr).toBe(137);
    const job = /muster: job (\S+):/.exec(r.stderr)![1]!;
    const v = await c.showJob(job);
    expect([v.state, v.reason, v.exitCode]).toEqual(["FAILED", "RaisedSignal:9(Killed)", "0:9"]);
    expect([v.steps[0].state, v.steps[0].exitCode]).toEqual(["FAILED", "0:9"]);
    for (const t of v.steps[0].tasks) {
      if (t.rank === 0) expect(t).toMatchObject({ outcome: { kind: "exited", code: 0 }, killedByRuntime: false });
      else expect(t).toMatchObject({ outcome: { kind: "signaled", signal: 9 }, killedByRuntime: false });
    }
    expect(r.stderr).toMatch(/: tasks 1-3: Killed\n/);
    // As slurmstepd does when srun's wait ends a step.
    expect(r.stderr).toMatch(stopLinePattern(`STEP ${job}.0`, "node-1"));
  });

  it("a time limit prints `*** STEP … CANCELLED AT … DUE TO TIME LIMIT ***` once, naming the first task's node", async () => {
    const r = await c.muster(["run", "-v", "-N", "2", "-n", "2", "--time", "0:02", "--", "sleep", "600"]);
    expect(r.code, r.stderr).toBe(143);
    const job = /muster: job (\S+):/.exec(r.stderr)![1]!;
    expect(r.stderr).toMatch(stopLinePattern(`STEP ${job}.0`, "node-1", "TIME LIMIT"));
    expect(r.stderr.match(/\*\*\* STEP/g)).toHaveLength(1);
    expect((await c.showJob(job)).state).toBe("TIMEOUT");
  });

  it("a cancel prints `*** STEP … CANCELLED AT … ***`, also when the tasks trap SIGTERM and exit 0", async () => {
    const run = c.start(["run", "-v", "-n", "2", "--", "sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]);
    const job = await jobOf(run);
    const tasks = await allRunning(c, job, 2);
    const k = await c.muster(["kill", job]);
    expect(k.code, k.stderr).toBe(0);
    const r = await run.done;
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(stopLinePattern(`STEP ${job}.0`, tasks[0].node));
    const v = await c.showJob(job);
    expect([v.state, v.exitCode]).toEqual(["CANCELLED", "0:0"]);
    for (const t of v.steps[0].tasks) expect(t).toMatchObject({ outcome: { kind: "exited", code: 0 }, killedByRuntime: true });
  });

  it("a step is COMPLETING only once it is being stopped, not when its first task ended", async () => {
    const run = c.start(["run", "-v", "-n", "2", "--kill-wait", "30", "--", "sh", "-c", "[ \"$MUSTER_TASK_ID\" = 0 ] && exit 0; trap '' TERM; sleep 600 & wait"]);
    const job = await jobOf(run);
    await waitFor(async () => (await tasksOf(c, job)).some((t) => t.state === "exited"), { timeoutMs: 20_000, message: "rank 0 exited" });
    await waitFor(async () => (await tasksOf(c, job)).some((t) => t.state === "running"), { timeoutMs: 20_000, message: "rank 1 running" });
    const q = await c.ctl("query", { type: "query", v: 1, what: "job", job });
    expect([q.state, q.steps[0].state]).toEqual(["RUNNING", "RUNNING"]);
    expect((await c.muster(["kill", job])).code).toBe(0);
    // Rank 1 ignores TERM: the step stays COMPLETING until the second kill's SIGKILL.
    await waitFor(async () => (await c.ctl("query", { type: "query", v: 1, what: "job", job })).steps[0].state === "COMPLETING", {
      timeoutMs: 10_000,
      message: "step COMPLETING",
    });
    expect((await c.muster(["kill", job])).code).toBe(0);
    await run.done;
    expect((await c.showJob(job)).state).toBe("CANCELLED");
  });

  it("a cancelled batch job: `*** STEP J.0 …` from muster run and `*** JOB J ON <batch host> …` in the output file", async () => {
    writeFileSync(join(dir, "steps.sh"), "#!/bin/sh\necho start\nmuster run -n 2 -- sleep 600\necho after\n", { mode: 0o755 });
    const b = c.start(["batch", "-n", "2", "--wait", "-o", "out-%j.log", "steps.sh"], { cwd: dir });
    const job = await waitFor(() => /Submitted batch job (\S+)/.exec(b.stdout())?.[1], { timeoutMs: 15_000, message: "job id" });
    await waitFor(
      async () => {
        const v = await c.ctl("query", { type: "query", v: 1, what: "job", job });
        return v.steps.some((s: any) => s.stepId === "0" && s.tasks.length === 2 && s.tasks.every((t: any) => t.state === "running"));
      },
      { timeoutMs: 20_000, message: "step 0 running" },
    );
    const host = (await c.ctl("query", { type: "query", v: 1, what: "job", job })).steps.find((s: any) => s.stepId === "batch").tasks[0].node;
    expect((await c.muster(["kill", job])).code).toBe(0);
    await b.done;
    const out = readFileSync(join(dir, `out-${job}.log`), "utf8");
    expect(out).toMatch(stopLinePattern(`STEP ${job}.0`, "node-\\d"));
    expect(out).toMatch(stopLinePattern(`JOB ${job}`, host));
    expect((await c.showJob(job)).state).toBe("CANCELLED");
  });

  it("a batch job's time limit: `*** JOB J ON <batch host> CANCELLED AT … DUE TO TIME LIMIT ***` in the output file", async () => {
    writeFileSync(join(dir, "long.sh"), "#!/bin/sh\necho start\nsleep 600\n", { mode: 0o755 });
    const b = await c.start(["batch", "--wait", "-t", "0:02", "-o", "long-%j.log", "long.sh"], { cwd: dir }).done;
    const job = /Submitted batch job (\S+)/.exec(b.stdout)![1]!;
    const v = await c.showJob(job);
    expect(v.state).toBe("TIMEOUT");
    const host = v.steps.find((s: any) => s.stepId === "batch").tasks[0].node;
    const out = readFileSync(join(dir, `long-${job}.log`), "utf8");
    expect(out).toMatch(new RegExp(`^start\n${stopLinePattern(`JOB ${job}`, host, "TIME LIMIT").source}$`));
  });
});

describe("a node lost under a running step", () => {
  let c: Cluster | undefined;
  afterEach(async () => {
    await c?.stop();
    c = undefined;
  });

  /** A 3-node step of `command` (one task per node) on a fresh 3-agent cluster, every task running. */
  async function threeNodeStep(extra: string[], command = ["sleep", "600"], cwd?: string) {
    c = await startCluster({ agents: 3, slots: 2, env: { MUSTER_KILL_WAIT: "2" } });
    const run = c.start(["run", "-v", "-N", "3", ...extra, "--", ...command], { cwd });
    const job = await jobOf(run);
    const tasks = await allRunning(c, job, 3);
    expect(tasks.map((t) => t.node)).toEqual(["node-1", "node-2", "node-3"]);
    return { cl: c, run, job, pids: tasks.flatMap((t) => processTree(t.pid)) };
  }

  it("ends the step: node_lost, the rest stopped by the runtime, NODE_FAIL with FailedNode, exit 1, no task process left", async () => {
    const { cl, run, job, pids } = await threeNodeStep([]);
    const t0 = Date.now();
    cl.agents.get("node-2")!.kill("SIGKILL");
    const r = await run.done;
    const v = await cl.showJob(job);
    const bound = 3000 + 2000 + 5000; // nodeTimeout + KillWait + 5 s
    console.log(`node failure: agent SIGKILL → job end ${v.endedAt - t0} ms (bound ${bound} ms), muster run returned ${Date.now() - t0} ms`);
    expect(v.endedAt - t0).toBeLessThanOrEqual(bound);
    expect(r.code, r.stderr).toBe(1);
    expect([v.state, v.reason, v.failedNodes]).toEqual(["NODE_FAIL", "NodeDown", ["node-2"]]);
    const byRank = v.steps[0].tasks as any[];
    expect(byRank[1]).toMatchObject({ state: "nodeLost", outcome: { kind: "node_lost" } });
    for (const t of [byRank[0], byRank[2]]) expect(t).toMatchObject({ outcome: { kind: "signaled", signal: 15 }, killedByRuntime: true });
    expect(r.stderr).toMatch(stopLinePattern(`STEP ${job}.0`, "node-1", "NODE FAILURE"));
    expect(r.stderr).toMatch(/node-2: task 1: Node lost\n/);
    await waitFor(() => pids.every(gone), { timeoutMs: 10_000, message: `task processes ${pids.join(",")} gone` });
  });

  it("--no-kill: only the lost node's task ends, the other two run on until they finish by themselves", async () => {
    const dir = mkdtempSync(join(tmpdir(), "muster-nokill-"));
    try {
      // Each task runs until the test creates `go`, then exits 0 on its own.
      const { cl, run, job } = await threeNodeStep(["--no-kill"], ["sh", "-c", "while [ ! -e go ]; do sleep 0.1; done; exit 0"], dir);
      cl.agents.get("node-2")!.kill("SIGKILL");
      await waitFor(async () => (await tasksOf(cl, job))[1].state === "nodeLost", { timeoutMs: 15_000, message: "rank 1 node_lost" });
      const q = await cl.ctl("query", { type: "query", v: 1, what: "job", job });
      expect([q.state, q.steps[0].state, q.steps[0].tasks[0].state, q.steps[0].tasks[2].state]).toEqual(["RUNNING", "RUNNING", "running", "running"]);
      writeFileSync(join(dir, "go"), "");
      const r = await run.done;
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).not.toMatch(/\*\*\* STEP/);
      const v = await cl.showJob(job);
      expect([v.state, v.failedNodes]).toEqual(["NODE_FAIL", ["node-2"]]);
      // Not stopped by anyone: both ended with their own exit 0.
      for (const t of [v.steps[0].tasks[0], v.steps[0].tasks[2]]) expect(t).toMatchObject({ outcome: { kind: "exited", code: 0 }, killedByRuntime: false });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

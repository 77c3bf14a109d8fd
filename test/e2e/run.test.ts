/**
 * `muster run` end to end: a real nats-server, a supervisor and three agents running real
 * processes, driven through the built CLI.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobIdOf, startCluster, type Cluster } from "../support/cluster.js";
import { waitFor } from "../support/wait.js";

let c: Cluster;

beforeAll(async () => {
  c = await startCluster({ agents: 3, slots: 2 });
}, 60_000);

afterAll(async () => {
  await c?.stop();
});

/** Messages stored on a subject of the JOBS stream. */
async function storedMessages(subject: string): Promise<unknown[]> {
  const nc = await connect({ servers: c.nats.url });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(`${c.prefix.toUpperCase()}_JOBS`, { subjects_filter: subject });
    const count = info.state.subjects?.[subject] ?? 0;
    const out: unknown[] = [];
    if (count === 0) return out;
    const js = jsm.jetstream();
    const consumer = await js.consumers.get(`${c.prefix.toUpperCase()}_JOBS`, { filter_subjects: subject });
    for (let i = 0; i < count; i++) {
      const m = await consumer.next({ expires: 2000 });
      if (!m) break;
      out.push(m.json());
    }
    return out;
  } finally {
    await nc.close();
  }
}

describe("muster run", () => {
  it("exits with the highest exit code, and show job agrees on state, reason, ExitCode and placement", async () => {
    const r = await c.muster(["run", "-v", "-l", "-n", "4", "--", "sh", "-c", 'echo "node=$MUSTER_NODE"; exit $MUSTER_TASK_ID']);
    expect(r.code, r.stderr).toBe(3);
    const job = jobIdOf(r.stderr);
    const view = await c.showJob(job);
    expect([view.state, view.reason, view.exitCode]).toEqual(["FAILED", "NonZeroExitCode", "3:0"]);
    const step = view.steps[0];
    expect([step.state, step.reason, step.exitCode]).toEqual(["FAILED", "NonZeroExitCode", "3:0"]);
    // Every rank ran where the placement put it: the task's own MUSTER_NODE matches show's node.
    for (const t of step.tasks) {
      expect(r.stdout).toContain(`${t.rank}: node=${t.node}`);
      expect(t.exitCode).toBe(`${t.rank}:0`);
    }
    const placed = /muster: job \S+: 4 tasks on (\S+)/.exec(r.stderr)![1]!;
    for (const [node, ranks] of Object.entries(step.nodes)) expect(placed).toContain(`${node}[${ranks}]`);
    expect(r.stderr).toContain("task 1: Exited with exit code 1");
    expect(r.stderr).toContain("task 3: Exited with exit code 3");
  });

  it("reports a segfault as signal 11 and exits 128+11", async () => {
    const r = await c.muster(["run", "-v", "-n", "4", "--", "sh", "-c", 'ulimit -c 0; [ $MUSTER_TASK_ID = 3 ] && kill -SEGV $$; [ $MUSTER_TASK_ID = 2 ] && exit 1; exit 0']);
    expect(r.code, r.stderr).toBe(139);
    const view = await c.showJob(jobIdOf(r.stderr));
    expect([view.state, view.reason, view.exitCode]).toEqual(["FAILED", "RaisedSignal:11(Segmentation_fault)", "0:11"]);
    expect(r.stderr).toMatch(/task 3: Segmentation fault\n/);
    expect(r.stderr).toMatch(/task 2: Exited with exit code 1\n/);
  });

  it("reports a task's own kill -INT as signal 2 Interrupt", async () => {
    const r = await c.muster(["run", "-v", "-n", "1", "--", "sh", "-c", "kill -INT $$; sleep 5"]);
    expect(r.code, r.stderr).toBe(130);
    const view = await c.showJob(jobIdOf(r.stderr));
    expect(view.reason).toBe("RaisedSignal:2(Interrupt)");
    expect(r.stderr).toMatch(/task 0: Interrupt\n/);
  });

  it("a command that does not exist exits 127 with JobLaunchFailure", async () => {
    const r = await c.muster(["run", "-v", "-n", "2", "--", "/nonexistent/muster-no-such-command"]);
    expect(r.code, r.stderr).toBe(127);
    const view = await c.showJob(jobIdOf(r.stderr));
    expect([view.state, view.reason, view.exitCode]).toEqual(["FAILED", "JobLaunchFailure", "127:0"]);
  });

  it("prints the Task Exit Code Summary while the other tasks still run, and stores one notification", async () => {
    const started = Date.now();
    const run = c.start(["run", "-v", "-n", "4", "--", "sh", "-c", '[ $MUSTER_TASK_ID = 3 ] && exit 5; sleep 3; exit 0']);
    const summaryAt = await waitFor(() => (run.stderr().includes("Task Exit Code Summary") ? Date.now() : undefined), { timeoutMs: 20_000, intervalMs: 10 });
    const r = await run.done;
    const endedAt = Date.now();
    expect(r.code, r.stderr).toBe(5);
    expect(endedAt - summaryAt).toBeGreaterThanOrEqual(2000);
    console.log(`summary ${summaryAt - started} ms after start, ${endedAt - summaryAt} ms before the end`);
    expect(r.stderr).toMatch(/exited 5\s+task 3/);
    // Ranks 0-2 were still alive (launching or running) when the summary was taken: none had ended.
    const summary = r.stderr.slice(r.stderr.indexOf("Task Exit Code Summary"), r.stderr.indexOf("muster: error:"));
    expect(summary).not.toMatch(/exited 0/);
    expect(summary).toMatch(/(running|launching)\s+tasks? [0-2]/);
    const job = jobIdOf(r.stderr);
    const msgs = (await storedMessages(`${c.prefix}.job.${job}.step.0.exitcodes`)) as { type: string }[];
    expect(msgs.map((m) => m.type)).toEqual(["step.first_failure", "step.summary"]);
  });
});

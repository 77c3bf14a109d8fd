/**
 * Faults end to end: a real nats-server, a supervisor and agents running real processes, with the
 * supervisor SIGKILLed mid-job, nats-server SIGKILLed and restarted under a running job, a job
 * record damaged in the KV bucket while the supervisor is down, and an agent started with SIGINT ignored. Each destructive scenario gets its own cluster.
 */
import { existsSync, readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSubjects } from "../../src/protocol/index.js";
import { startCluster, type Cluster, type RunningCommand } from "../support/cluster.js";
import { waitFor } from "../support/wait.js";

interface Stored {
  readonly subject: string;
  readonly seq: number;
  readonly msg: { type: string; rank?: number; at?: number; outcome?: unknown };
}

/** Every message a stream holds on `filter` (wildcards allowed), in stream order, read with nats.js directly. */
async function storedMessages(c: Cluster, stream: string, filter: string): Promise<Stored[]> {
  const nc = await connect({ servers: c.nats.url, reconnect: false, timeout: 2_000 });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 2_000 });
    const info = await jsm.streams.info(stream, { subjects_filter: filter });
    const count = Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
    const out: Stored[] = [];
    if (count === 0) return out;
    const consumer = await jsm.jetstream().consumers.get(stream, { filter_subjects: filter });
    while (out.length < count) {
      const m = await consumer.next({ expires: 2_000 });
      if (!m) throw new Error(`${stream} ${filter}: ${count} messages announced, ${out.length} read`);
      out.push({ subject: m.subject, seq: m.seq, msg: m.json() });
    }
    return out;
  } finally {
    await nc.close();
  }
}

/** The task events of a job stored in the EVENTS stream. */
function taskEvents(c: Cluster, job: string): Promise<Stored[]> {
  const s = createSubjects(c.prefix);
  return storedMessages(c, s.streams.events.name, s.evt.ofJob(job));
}

/** The types of the messages stored on the step's notification subject, in order. */
async function notifications(c: Cluster, job: string, step = 0): Promise<string[]> {
  const s = createSubjects(c.prefix);
  return (await storedMessages(c, s.streams.jobs.name, s.job.exitCodes(job, step))).map((m) => m.msg.type);
}

/** Waits for the job id that `muster run -v` prints on stderr. */
function jobIdOf(run: RunningCommand): Promise<string> {
  return waitFor(() => /muster: job (\S+):/.exec(run.stderr())?.[1], { timeoutMs: 15_000, message: "muster run -v printed its job id" });
}

/** Waits until the supervisor knows every task of the job's step 0 runs (asked from the test process: no CLI start-up per poll); returns the job view. */
function waitAllRunning(c: Cluster, job: string, ntasks: number): Promise<any> {
  return waitFor(
    async () => {
      const view = await c.ctl("query", { type: "query", v: 1, what: "job", job });
      const tasks = view.steps[0]?.tasks ?? [];
      return view.state === "RUNNING" && tasks.length === ntasks && tasks.every((t: any) => t.state === "running" && t.pid) ? view : undefined;
    },
    { timeoutMs: 15_000, intervalMs: 50, message: `job ${job}: ${ntasks} tasks running` },
  );
}

/** Waits for a CLI command to end; on timeout kills it and fails with its output and the services' logs. */
async function finish(c: Cluster, run: RunningCommand, timeoutMs: number) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)));
  try {
    const r = await Promise.race([run.done, timeout]);
    if (r) return r;
  } finally {
    clearTimeout(timer);
  }
  run.proc.kill("SIGKILL");
  const tail = (name: string) => c.logs(name).split("\n").slice(-40).join("\n");
  throw new Error(
    `muster run did not end within ${timeoutMs} ms\n--- its stderr ---\n${run.stderr()}\n--- supervisor ---\n${tail("supervisor")}\n` +
      [...c.agents.keys()].map((n) => `--- ${n} ---\n${tail(n)}`).join("\n"),
  );
}

function exited(p: { exitCode: number | null; signalCode: NodeJS.Signals | null }): boolean {
  return p.exitCode !== null || p.signalCode !== null;
}

/** A process that is gone or a zombie. */
function processEnded(pid: number): boolean {
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return true;
  }
}

/** The SigIgn mask of /proc/<pid>/status (or of `grep`'s output), as a bigint. */
function sigIgn(statusText: string): bigint {
  const m = /^SigIgn:\s*([0-9a-f]+)/m.exec(statusText);
  if (!m) throw new Error(`no SigIgn line in:\n${statusText}`);
  return BigInt(`0x${m[1]}`);
}
const SIGINT_BIT = 1n << 1n;

describe("supervisor SIGKILLed", () => {
  let c: Cluster;
  beforeAll(async () => {
    // A generous nodeTimeout: on a loaded machine, late heartbeats must not turn these jobs into NODE_FAIL.
    c = await startCluster({ agents: 3, slots: 2, env: { MUSTER_NODE_TIMEOUT: "10" } });
  }, 60_000);
  afterAll(async () => {
    await c?.stop();
  });

  it("mid-job: the job still ends FAILED 9:0 with one notification and one summary, and muster run exits 9", async () => {
    const run = c.start(["run", "-v", "-n", "6", "--", "sh", "-c", "sleep 2; [ $MUSTER_TASK_ID = 4 ] && exit 9; exit 0"]);
    const job = await jobIdOf(run);
    await waitAllRunning(c, job, 6);
    expect((await taskEvents(c, job)).filter((e) => e.msg.type === "task.started")).toHaveLength(6);

    const sup = c.supervisor;
    const killedAt = Date.now();
    sup.kill("SIGKILL");
    await waitFor(() => exited(sup), { message: "supervisor died" });
    expect(sup.signalCode).toBe("SIGKILL");

    // The agents store every task.ended in JetStream while no supervisor runs.
    const ended = await waitFor(
      async () => {
        const evs = (await taskEvents(c, job)).filter((e) => e.msg.type === "task.ended");
        return evs.length === 6 ? evs : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 100, message: "6 task.ended stored" },
    );
    for (const e of ended) expect(e.msg.at!).toBeGreaterThanOrEqual(killedAt);
    // muster run follows JetStream, not the supervisor: it is still waiting.
    expect(exited(run.proc), run.stderr()).toBe(false);

    await c.startSupervisor();
    const r = await finish(c, run, 20_000);
    expect(r.code, r.stderr).toBe(9);
    expect(r.stderr).toMatch(/task 4: Exited with exit code 9\n/);

    const view = await c.showJob(job);
    expect([view.state, view.reason, view.exitCode]).toEqual(["FAILED", "NonZeroExitCode", "9:0"]);
    const step = view.steps[0];
    expect([step.state, step.reason, step.exitCode]).toEqual(["FAILED", "NonZeroExitCode", "9:0"]);
    expect(step.tasks.map((t: any) => [t.rank, t.exitCode])).toEqual([0, 1, 2, 3, 4, 5].map((rank) => [rank, rank === 4 ? "9:0" : "0:0"]));
    expect(await notifications(c, job)).toEqual(["step.first_failure", "step.summary"]);
  }, 40_000);

  it("right after the first-failure notification is stored: a restart sends it no second time", async () => {
    const s = createSubjects(c.prefix);
    const watcher = await connect({ servers: c.nats.url });
    const sup = c.supervisor;
    let killed = false;
    // A core subscription sees the notification the moment JetStream stores it; the supervisor is
    // killed from inside the callback, before it has (most likely) persisted the job and acked the event.
    watcher.subscribe(s.job.exitCodesAll, {
      callback: (_err, m) => {
        if (!killed && (m.json() as { type: string }).type === "step.first_failure") {
          killed = sup.kill("SIGKILL");
        }
      },
    });
    await watcher.flush();
    try {
      const run = c.start(["run", "-v", "-n", "4", "--", "sh", "-c", "[ $MUSTER_TASK_ID = 2 ] && exit 3; sleep 2; exit 0"]);
      const job = await jobIdOf(run);
      await waitFor(() => killed && exited(sup), { timeoutMs: 15_000, message: "supervisor killed at the first failure" });
      expect(sup.signalCode).toBe("SIGKILL");
      const before = c.logs("supervisor").length;
      await c.startSupervisor();

      const r = await finish(c, run, 20_000);
      expect(r.code, r.stderr).toBe(3);
      // When the kill beat the persistence, the restarted supervisor processed the failure again
      // (and JetStream dropped the repeated notification by its message id).
      const replayed = c.logs("supervisor").slice(before).includes('"msg":"step.first_failure"');
      console.log(`the restarted supervisor re-processed the first failure: ${replayed}`);

      const view = await c.showJob(job);
      expect([view.state, view.reason, view.exitCode]).toEqual(["FAILED", "NonZeroExitCode", "3:0"]);
      expect(view.steps[0].tasks.map((t: any) => t.exitCode)).toEqual(["0:0", "0:0", "3:0", "0:0"]);
      expect(await notifications(c, job)).toEqual(["step.first_failure", "step.summary"]);
      expect(r.stderr.match(/Task Exit Code Summary/g)).toHaveLength(1);
    } finally {
      await watcher.close();
    }
  }, 40_000);

  it("a supervisor restarted once more still consumes task events", async () => {
    // The previous restart re-created the durable consumer from its ack floor; the next start must reopen it.
    const sup = c.supervisor;
    sup.kill("SIGTERM");
    await waitFor(() => exited(sup), { timeoutMs: 15_000, message: "supervisor stopped" });
    await c.startSupervisor();
    const r = await c.muster(["run", "-n", "2", "--", "sh", "-c", "exit $MUSTER_TASK_ID"], { timeoutMs: 20_000 });
    expect(r.code, r.stderr + c.logs("supervisor").slice(-3000)).toBe(1);
  }, 30_000);
});

describe("task events are acknowledged only once their job is saved", () => {
  let c: Cluster;
  beforeAll(async () => {
    // Saves of task-event changes wait 60 s, so the events below stay applied but unsaved.
    c = await startCluster({ agents: 1, slots: 2, env: { MUSTER_NODE_TIMEOUT: "10", MUSTER_SAVE_INTERVAL: "60" } });
  }, 60_000);
  afterAll(async () => {
    await c?.stop();
  });

  it("a supervisor SIGKILLed with unsaved changes gets those events again and loses none", async () => {
    const run = c.start(["run", "-v", "-n", "2", "--", "sh", "-c", "[ $MUSTER_TASK_ID = 0 ] && exit 0; sleep 4; exit 0"]);
    const job = await jobIdOf(run);
    // The supervisor applied task 0's exit (it answers from memory) …
    await waitFor(
      async () => {
        const view = await c.ctl("query", { type: "query", v: 1, what: "job", job });
        const tasks = view.steps[0]?.tasks ?? [];
        return tasks[0]?.state === "exited" && tasks[1]?.state === "running" ? view : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 50, message: "task 0 exited, task 1 running" },
    );
    // … but has not saved it, so its events are not acknowledged.
    const s = createSubjects(c.prefix);
    const nc = await connect({ servers: c.nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.consumers.info(s.streams.events.name, "supervisor");
      expect(info.num_ack_pending).toBeGreaterThanOrEqual(3); // task.started ×2, task.ended of rank 0
    } finally {
      await nc.close();
    }
    const sup = c.supervisor;
    sup.kill("SIGKILL");
    await waitFor(() => exited(sup), { message: "supervisor died" });
    await c.startSupervisor();

    // Acknowledged early, task 0's exit would never come back and the job would never end.
    const r = await finish(c, run, 20_000);
    expect(r.code, r.stderr).toBe(0);
    const view = await c.showJob(job);
    expect([view.state, view.exitCode]).toEqual(["COMPLETED", "0:0"]);
    expect(view.steps[0].tasks.map((t: any) => [t.state, t.exitCode])).toEqual([
      ["exited", "0:0"],
      ["exited", "0:0"],
    ]);
  }, 40_000);
});

describe("nats-server SIGKILLed and restarted under a running job", () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({ agents: 3, slots: 2 });
  }, 60_000);
  afterAll(async () => {
    await c?.stop();
  });

  it("the job ends FAILED 2:0 and muster run exits 2, with every task's outcome", async () => {
    const run = c.start(["run", "-v", "-n", "3", "--", "sh", "-c", "sleep 2; exit $MUSTER_TASK_ID"]);
    const job = await jobIdOf(run);
    const running = await waitAllRunning(c, job, 3);
    const pids: number[] = running.steps[0].tasks.map((t: any) => t.pid);

    await c.nats.kill("SIGKILL");
    const downAt = Date.now();
    // The tasks end while there is no server: their events wait in the agents' outboxes. The server
    // stays down past nodeTimeout too: a supervisor that hears nothing because its own connection is
    // down must not declare the nodes lost (that would turn the job into NODE_FAIL).
    const nodeTimeoutMs = Number(c.env.MUSTER_NODE_TIMEOUT) * 1000;
    await waitFor(() => pids.every(processEnded) && Date.now() - downAt > nodeTimeoutMs + 500, {
      timeoutMs: 15_000,
      intervalMs: 50,
      message: `tasks ${pids.join(",")} ended and nodeTimeout passed`,
    });
    expect(exited(run.proc), run.stderr()).toBe(false);
    expect(exited(c.supervisor)).toBe(false);
    await c.nats.restart();
    const upAt = Date.now();

    const r = await finish(c, run, 20_000);
    console.log(`nats down ${upAt - downAt} ms; muster run ended ${Date.now() - upAt} ms after the restart`);
    expect(r.code, r.stderr).toBe(2);
    // The agents waited for the connection instead of sending requests into the void (each of which
    // would only time out, 5 s later, and delay the outcome that much).
    const timedOut = [...c.agents.keys()].flatMap((n) => c.logs(n).split("\n")).filter((l) => l.includes(`"job":"${job}"`) && l.includes('"msg":"publish.retry"') && l.includes('"err":"timeout"'));
    expect(timedOut).toEqual([]);
    const view = await c.showJob(job);
    expect([view.state, view.reason, view.exitCode]).toEqual(["FAILED", "NonZeroExitCode", "2:0"]);
    expect(view.steps[0].tasks.map((t: any) => [t.rank, t.state, t.exitCode])).toEqual([
      [0, "exited", "0:0"],
      [1, "exited", "1:0"],
      [2, "exited", "2:0"],
    ]);
    expect(r.stderr).toMatch(/task 1: Exited with exit code 1\n/);
    expect(r.stderr).toMatch(/task 2: Exited with exit code 2\n/);
    expect(await notifications(c, job)).toEqual(["step.first_failure", "step.summary"]);
    const events = await taskEvents(c, job);
    expect(events.filter((e) => e.msg.type === "task.ended")).toHaveLength(3);
    expect(c.logs("supervisor")).not.toContain('"to":"lost"');
    // Nothing was lost or doubled: one started and one ended per rank.
    expect(events.map((e) => `${e.msg.rank}:${e.msg.type}`).sort()).toEqual(["0:task.ended", "0:task.started", "1:task.ended", "1:task.started", "2:task.ended", "2:task.started"]);
  }, 45_000);
});

describe("a job record damaged while the supervisor is down", () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({ agents: 1, slots: 2, env: { MUSTER_NODE_TIMEOUT: "10" } });
  }, 60_000);
  afterAll(async () => {
    await c?.stop();
  });

  it("the supervisor starts with every other job, says why the damaged one cannot be shown, and dead-letters its events", async () => {
    const done = await c.muster(["run", "-v", "-n", "1", "--", "true"], { timeoutMs: 20_000 });
    expect(done.code, done.stderr).toBe(0);
    const good = /muster: job (\S+):/.exec(done.stderr)![1]!;
    const run = c.start(["run", "-v", "-n", "1", "--", "sh", "-c", "sleep 3; exit 4"]);
    const bad = await jobIdOf(run);
    await waitAllRunning(c, bad, 1);
    const sup = c.supervisor;
    sup.kill("SIGTERM");
    await waitFor(() => exited(sup), { timeoutMs: 15_000, message: "supervisor stopped" });
    // The running job's task chunk disappears from the bucket (an operator's mistake, a damaged store).
    const nc = await connect({ servers: c.nats.url });
    try {
      const kv = await new Kvm(nc).open(createSubjects(c.prefix).buckets.snapshots);
      const rec = JSON.parse((await kv.get(`job.${bad}`))!.string()) as { steps: Record<string, { chunkKeys: string[] }> };
      await kv.purge(rec.steps["0"]!.chunkKeys[0]!);
    } finally {
      await nc.close();
    }
    await c.startSupervisor();
    await waitFor(() => c.logs("supervisor").split('"msg":"supervisor.started"').length === 3, { timeoutMs: 15_000, message: "supervisor started again" });
    expect(c.logs("supervisor")).toMatch(new RegExp(`"job":"${bad}","reason":"job ${bad} step 0: missing task chunk [^"]+","heldSlots":\\["node-1:0"\\],"msg":"job.restore_failed"`));

    const shown = await c.muster(["show", "job", bad]);
    expect(shown.code).not.toBe(0);
    expect(shown.stderr).toContain(`job ${bad} could not be restored from its stored record (job ${bad} step 0: missing task chunk`);
    expect((await c.showJob(good)).state).toBe("COMPLETED");
    // Its task may still run: its slot stays taken (1 of node-1's 2).
    const nodes = JSON.parse((await c.muster(["nodes", "--json"])).stdout) as { node: string; runningTasks: number }[];
    expect(nodes.find((n) => n.node === "node-1")?.runningTasks).toBe(1);
    // The damaged job's task exit (at ~3 s) is kept in the dead-letter stream, not applied.
    const dlq = await waitFor(
      async () => {
        const nc2 = await connect({ servers: c.nats.url });
        try {
          const jsm = await jetstreamManager(nc2);
          const m = await jsm.streams.getMessage(`${c.prefix.toUpperCase()}_DLQ`, { last_by_subj: `${c.prefix}.dlq.supervisor` }).catch(() => undefined);
          return m?.json<{ reason: string; message: string; subject: string }>();
        } finally {
          await nc2.close();
        }
      },
      { timeoutMs: 15_000, message: "the damaged job's event dead-lettered" },
    );
    expect(dlq.reason).toBe("UNAVAILABLE");
    expect(dlq.subject).toContain(`.${bad}.0.0`);
    // New jobs run as usual.
    const after = await c.muster(["run", "-n", "1", "--", "sh", "-c", "exit 3"], { timeoutMs: 20_000 });
    expect(after.code, after.stderr).toBe(3);
    // Two tasks do not fit beside the slot the damaged job holds: the job waits for resources.
    const waiting = c.start(["run", "-v", "-n", "2", "--", "true"]);
    const w = await jobIdOf(waiting);
    await new Promise((r) => setTimeout(r, 1000));
    const view = await c.showJob(w);
    expect([view.state, view.reason]).toEqual(["PENDING", "Resources"]);
    expect((await c.muster(["kill", w])).code).toBe(0);
    await waiting.done;
    run.proc.kill("SIGKILL");
  }, 60_000);
});

describe("an agent started with SIGINT ignored", () => {
  let c: Cluster;
  const wrap = ["sh", "-c", 'trap "" INT; exec "$@"', "sh"];
  beforeAll(async () => {
    c = await startCluster({ agents: 0 });
    await c.startAgent("node-int", { wrap });
    await c.waitNodes(1);
  }, 60_000);
  afterAll(async () => {
    await c?.stop();
  });

  it("still runs tasks with SIGINT at its default: kill -INT $$ exits 130, RaisedSignal:2(Interrupt)", async () => {
    // The wrap passes its argv through and really ignores SIGINT in what it execs.
    const probe = spawnSync(wrap[0]!, [...wrap.slice(1), "grep", "^SigIgn:", "/proc/self/status"], { encoding: "utf8" });
    expect(probe.status, probe.stderr).toBe(0);
    expect(sigIgn(probe.stdout) & SIGINT_BIT).toBe(SIGINT_BIT);
    // The agent is the exec'd node process itself, with the arguments cluster.ts gave it.
    const agent = c.agents.get("node-int")!;
    const cmdline = readFileSync(`/proc/${agent.pid}/cmdline`, "utf8").split("\0");
    expect(cmdline).toEqual(expect.arrayContaining(["agent", "--node", "node-int"]));
    expect(readFileSync(`/proc/${agent.pid}/comm`, "utf8").trim()).toBe("node");
    // Node resets every signal disposition at startup, so the agent itself does not keep the trap;
    // what the contract promises is about the tasks, asserted below.
    console.log(`agent SigIgn: ${sigIgn(readFileSync(`/proc/${agent.pid}/status`, "utf8")).toString(16)}`);

    const r = await c.muster(["run", "-v", "-n", "1", "--", "sh", "-c", "grep ^SigIgn: /proc/$$/status; kill -INT $$; sleep 5"]);
    expect(r.code, r.stderr).toBe(130);
    expect(sigIgn(r.stdout) & SIGINT_BIT).toBe(0n);
    const job = /muster: job (\S+):/.exec(r.stderr)![1]!;
    const view = await c.showJob(job);
    expect([view.state, view.reason, view.exitCode]).toEqual(["FAILED", "RaisedSignal:2(Interrupt)", "0:2"]);
    expect(view.steps[0].tasks[0].node).toBe("node-int");
    expect(r.stderr).toMatch(/task 0: Interrupt\n/);
    expect(existsSync(`/proc/${agent.pid}`)).toBe(true);
  }, 30_000);
});

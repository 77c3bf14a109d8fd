/**
 * Node failure detection and agent shutdown end to end: an agent SIGKILLed (with and without the
 * system account's DISCONNECT advisory), frozen with SIGSTOP and thawed (a new epoch, its late
 * event fenced), and stopped by SIGTERM, SIGINT or an uncaught exception (`bye`, node offline).
 * Each test wrecks a node, so each has its own cluster.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import type { ChildProcess } from "node:child_process";
import { setTimeout as delay } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { jobOf, startCluster, type Cluster, type ClusterOptions, type RunningCommand } from "../support/cluster.js";
import { waitFor } from "../support/wait.js";

let c: Cluster | undefined;

afterEach(async () => {
  for (const a of c?.agents.values() ?? []) a.kill("SIGCONT");
  await c?.stop();
  c = undefined;
});

const SYSTEM_ACCOUNT: ClusterOptions = {
  nats: { systemAccount: true },
  env: { NATS_USER: "app", NATS_PASSWORD: "app", MUSTER_SYS_USER: "sys", MUSTER_SYS_PASSWORD: "sys" },
};

async function cluster(opts: ClusterOptions): Promise<Cluster> {
  c = await startCluster(opts);
  return c;
}

/** Waits until the job's `n` tasks run, and returns them. */
async function allRunning(cl: Cluster, job: string, n: number): Promise<any[]> {
  return waitFor(
    async () => {
      const ts = (await cl.ctl("query", { type: "query", v: 1, what: "job", job })).steps[0].tasks as any[];
      return ts.length === n && ts.every((t) => t.state === "running" && t.pid) ? ts : undefined;
    },
    { timeoutMs: 15_000, message: `${n} tasks of ${job} running` },
  );
}

/** Polls the node table every 50 ms until `node` is in `state`; returns when that was seen and the row. */
async function nodeBecomes(cl: Cluster, node: string, state: string, timeoutMs = 15_000): Promise<{ seenAt: number; row: any }> {
  return waitFor(
    async () => {
      const row = (await cl.nodes()).find((n) => n.node === node);
      return row?.state === state ? { seenAt: Date.now(), row } : undefined;
    },
    { timeoutMs, intervalMs: 50, message: `${node} ${state}` },
  );
}

function exited(p: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve({ code: p.exitCode, signal: p.signalCode });
  return new Promise((r) => p.once("exit", (code, signal) => r({ code, signal })));
}

/** The last `bye` of `node` stored in the NODES stream. */
async function storedBye(cl: Cluster, node: string): Promise<{ reason: string; at: number; epoch: string; detail?: string }> {
  const jsm = await jetstreamManager(await cl.connection());
  const m = await jsm.streams.getMessage(`${cl.prefix.toUpperCase()}_NODES`, { last_by_subj: `${cl.prefix}.node.${node}.bye` });
  return m!.json();
}

/** Runs `sleep 600` tasks on node-1 only, and returns the running command and the job. */
async function sleepersOnNode1(cl: Cluster, n: number): Promise<{ run: RunningCommand; job: string }> {
  const run = cl.start(["run", "-v", "-N", "1", "-n", String(n), "--", "sleep", "600"]);
  const job = await jobOf(run);
  const tasks = await allRunning(cl, job, n);
  expect(tasks.every((t) => t.node === "node-1"), JSON.stringify(tasks)).toBe(true);
  return { run, job };
}

describe("an agent killed with SIGKILL", () => {
  it("with a system account: lost within 1 s (DISCONNECT advisory); its tasks node_lost, NODE_FAIL, run exits 1", async () => {
    const cl = await cluster({ agents: 1, slots: 4, ...SYSTEM_ACCOUNT });
    await waitFor(() => cl.logs("supervisor").includes("supervisor.advisories"), { message: "supervisor subscribed to advisories" });
    const { run, job } = await sleepersOnNode1(cl, 2);
    const t0 = Date.now();
    cl.agents.get("node-1")!.kill("SIGKILL");
    const { seenAt, row } = await nodeBecomes(cl, "node-1", "lost", 5000);
    console.log(`system account: SIGKILL → lost seen ${seenAt - t0} ms (supervisor's since ${row.since - t0} ms, reason ${row.reason})`);
    expect(seenAt - t0).toBeLessThan(1000);
    expect(row.reason).toBe("Disconnected");
    const r = await run.done;
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/node-1: tasks 0-1: Node lost/);
    const v = await cl.showJob(job);
    expect([v.state, v.reason, v.failedNodes]).toEqual(["NODE_FAIL", "NodeDown", ["node-1"]]);
    expect([v.steps[0].state, v.steps[0].failedNodes]).toEqual(["NODE_FAIL", ["node-1"]]);
    for (const t of v.steps[0].tasks) expect(t).toMatchObject({ state: "nodeLost", outcome: { kind: "node_lost" } });
  });

  it("without a system account: lost within nodeTimeout + one heartbeat", async () => {
    const cl = await cluster({ agents: 1, slots: 4 });
    const { run, job } = await sleepersOnNode1(cl, 1);
    // Kill right after a heartbeat would be the worst case; any moment is within the bound.
    const t0 = Date.now();
    cl.agents.get("node-1")!.kill("SIGKILL");
    const { seenAt, row } = await nodeBecomes(cl, "node-1", "lost", 10_000);
    console.log(`no system account: SIGKILL → lost seen ${seenAt - t0} ms (since ${row.since - t0} ms, reason ${row.reason}); bound 3000 + 500 ms`);
    expect(row.since - t0).toBeLessThanOrEqual(3000 + 500 + 150);
    expect(seenAt - t0).toBeLessThanOrEqual(3000 + 500 + 300);
    expect(row.reason).toBe("NotResponding");
    expect((await run.done).code).toBe(1);
    expect((await cl.showJob(job)).state).toBe("NODE_FAIL");
  });
});

describe("an agent frozen with SIGSTOP", () => {
  it("is lost after nodeTimeout, comes back with a new epoch, and its late event for the old epoch is dropped", async () => {
    const cl = await cluster({ agents: 2, slots: 4 });
    // Rank 0 ends while its agent is frozen; rank 1 (the other node) keeps the job alive meanwhile
    // (--no-kill: by default the loss of rank 0's node would stop rank 1 and end the job).
    const run = cl.start(["run", "-v", "--no-kill", "-N", "2", "--ntasks-per-node", "1", "-n", "2", "--", "sh", "-c", 'if [ "$MUSTER_TASK_ID" = 0 ]; then sleep 2; exit 0; fi; exec sleep 600']);
    const job = await jobOf(run);
    const tasks = await allRunning(cl, job, 2);
    const node = tasks.find((t) => t.rank === 0).node as string;
    const before = (await cl.nodes()).find((n) => n.node === node)!;
    const agent = cl.agents.get(node)!;
    const t0 = Date.now();
    agent.kill("SIGSTOP");
    const lost = await nodeBecomes(cl, node, "lost", 10_000);
    console.log(`SIGSTOP → lost seen ${lost.seenAt - t0} ms (since ${lost.row.since - t0} ms, reason ${lost.row.reason})`);
    expect(lost.seenAt - t0).toBeGreaterThanOrEqual(3000 - 500);
    expect(lost.seenAt - t0).toBeLessThanOrEqual(3000 + 500 + 300);
    const rank0 = (await cl.showJob(job)).steps[0].tasks.find((t: any) => t.rank === 0);
    expect(rank0).toMatchObject({ state: "nodeLost", outcome: { kind: "node_lost" } });
    await delay(Math.max(0, 4000 - (Date.now() - t0)));
    const t1 = Date.now();
    agent.kill("SIGCONT");
    const back = await nodeBecomes(cl, node, "online", 10_000);
    console.log(`SIGCONT → online again ${back.seenAt - t1} ms, epoch ${before.epoch} → ${back.row.epoch}`);
    expect(back.row.epoch).toBeTruthy();
    expect(back.row.epoch).not.toBe(before.epoch);
    expect(cl.logs(node)).toContain("agent.reincarnated");
    // The task's exit (0, at ~2 s, while frozen) is reported under the old epoch and fenced.
    await waitFor(() => /"msg":"event\.ignored"[^\n]*"reason":"stale_epoch"|"reason":"stale_epoch"[^\n]*"msg":"event\.ignored"/.test(cl.logs("supervisor")), {
      timeoutMs: 10_000,
      message: `event.ignored stale_epoch in the supervisor log:\n${cl.logs("supervisor").split("\n").filter((l) => l.includes("ignored") || l.includes("after_job_end")).join("\n")}`,
    });
    const dlq = await waitFor(async () => {
      const jsm = await jetstreamManager(await cl.connection());
      const m = await jsm.streams.getMessage(`${cl.prefix.toUpperCase()}_DLQ`, { last_by_subj: `${cl.prefix}.dlq.supervisor` });
      return m?.json<{ reason: string; message: string }>();
    });
    expect(dlq).toMatchObject({ reason: "STALE_EPOCH", message: "ENDED for rank 0: stale_epoch" });
    const v = await cl.showJob(job);
    expect(v.steps[0].tasks.find((t: any) => t.rank === 0)).toMatchObject({ state: "nodeLost", outcome: { kind: "node_lost" } });
    expect((await cl.muster(["kill", job])).code).toBe(0);
    const r = await run.done;
    expect(r.code).toBe(1);
    const end = await cl.showJob(job);
    expect([end.state, end.failedNodes]).toEqual(["NODE_FAIL", [node]]);
  });

  it("frozen before its first heartbeat, it still comes back with a new epoch", async () => {
    // A long heartbeat interval leaves a wide window between the agent's hello and its first beat.
    const cl = await cluster({ agents: 0, env: { MUSTER_HEARTBEAT_INTERVAL: "2.5" } });
    const agent = await cl.startAgent("node-1");
    const before = await nodeBecomes(cl, "node-1", "online", 10_000);
    agent.kill("SIGSTOP");
    // Online from its hello alone, and frozen well within the 2.5 s before its first heartbeat.
    const started = /"time":(\d+)[^\n]*"msg":"agent\.started"/.exec(cl.logs("node-1"));
    expect(Date.now() - Number(started![1])).toBeLessThan(2000);
    await nodeBecomes(cl, "node-1", "lost", 10_000);
    agent.kill("SIGCONT");
    const back = await nodeBecomes(cl, "node-1", "online", 10_000);
    expect(back.row.epoch).not.toBe(before.row.epoch);
    expect(cl.logs("node-1")).toContain("agent.reincarnated");
  });
});

describe("an agent that shuts down", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`${signal}: says bye, is offline at once, its tasks' outcomes are reported, the job ends`, async () => {
      const cl = await cluster({ agents: 1, slots: 4 });
      const { run, job } = await sleepersOnNode1(cl, 2);
      const agent = cl.agents.get("node-1")!;
      agent.kill(signal);
      const offline = await nodeBecomes(cl, "node-1", "offline", 20_000);
      const bye = await storedBye(cl, "node-1");
      console.log(`${signal}: bye.at → supervisor's offline since ${offline.row.since - bye.at} ms, → seen offline by polling ${offline.seenAt - bye.at} ms`);
      expect(bye.reason).toBe("shutdown");
      expect(offline.row.since - bye.at).toBeLessThan(200);
      expect(await exited(agent)).toEqual({ code: 0, signal: null });
      const r = await run.done;
      expect(r.code, r.stderr).toBe(128 + 15);
      const v = await cl.showJob(job);
      expect([v.state, v.reason]).toEqual(["FAILED", "RaisedSignal:15(Terminated)"]);
      for (const t of v.steps[0].tasks) expect(t.outcome).toEqual({ kind: "signaled", signal: 15, coreDumped: false });
    });
  }

  it("an uncaught exception: bye with reason fatal, exit status 1, node offline, the job ends", async () => {
    const cl = await cluster({ agents: 0, slots: 4 });
    const agent = await cl.startAgent("node-1", { env: { MUSTER_AGENT_CRASH_AFTER_MS: "5000" } });
    await cl.waitNodes(1);
    const { run, job } = await sleepersOnNode1(cl, 2);
    const exit = await exited(agent);
    expect(exit).toEqual({ code: 1, signal: null });
    const bye = await storedBye(cl, "node-1");
    expect(bye.reason).toBe("fatal");
    expect(bye.detail).toContain("injected crash");
    expect(cl.logs("node-1")).toContain("agent.fatal");
    const offline = await nodeBecomes(cl, "node-1", "offline", 5000);
    console.log(`fatal: bye.at → offline since ${offline.row.since - bye.at} ms`);
    expect(offline.row.since - bye.at).toBeLessThan(200);
    const r = await run.done;
    expect(r.code).toBeGreaterThanOrEqual(1);
    const v = await cl.showJob(job);
    console.log(`fatal: job ${v.state} ${v.reason} ${v.exitCode}; tasks ${JSON.stringify(v.steps[0].tasks.map((t: any) => t.outcome))}`);
    expect(["NODE_FAIL", "FAILED"]).toContain(v.state);
  });
});

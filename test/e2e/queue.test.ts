/**
 * The FCFS queue and `queue`/`history` end to end: on two agents of two slots, jobs that do not fit
 * wait PENDING with Reason Resources and start in order as slots free up; `kill` of a pending job
 * cancels it at once; `history` prints jobs and steps in every format, filters them, and gives the
 * same answer after the supervisor and nats-server restart.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, type Cluster, type RunningCommand } from "../support/cluster.js";
import { waitFor } from "../support/wait.js";

let c: Cluster;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "muster-queue-"));
  c = await startCluster({ agents: 2, slots: 2 });
}, 60_000);

afterAll(async () => {
  await c?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface JobJson {
  jobId: string;
  user: string;
  state: string;
  reason: string;
  exitCode: string;
  derivedExitCode: string;
  submittedAt: number;
  startedAt?: number;
  endedAt?: number;
  steps: { stepId: string; state: string; exitCode: string }[];
}

/** The live jobs, as the supervisor answers `queue` (without starting a CLI process). */
const liveJobs = async (): Promise<JobJson[]> => c.ctl("query", { type: "query", v: 1, what: "jobs" });

/**
 * Starts 4-task jobs one after another, each once the previous one is in the queue, so their
 * submission order is known. Each job waits for the file `gate` before its `sleep SEC`, so that the
 * first one holds the slots for as long as the test looks at the queue, however slow the machine.
 */
async function submitInOrder(count: number, seconds: number, gate: string): Promise<{ runs: RunningCommand[]; jobs: string[] }> {
  const runs: RunningCommand[] = [];
  const jobs: string[] = [];
  for (let i = 0; i < count; i++) {
    const run = c.start(["run", "-v", "-n", "4", "-J", "sleep", "--", "sh", "-c", `while [ ! -e ${gate} ]; do sleep 0.05; done; exec sleep ${seconds}`]);
    runs.push(run);
    const job = await waitFor(() => /muster: job (\S+): 4 tasks/.exec(run.stderr())?.[1], { timeoutMs: 20_000, intervalMs: 10, message: `job ${i + 1} submitted` });
    jobs.push(job);
  }
  return { runs, jobs };
}

const byId = (jobs: readonly JobJson[], id: string) => jobs.find((j) => j.jobId === id);

describe("the queue", () => {
  it("three 4-task jobs on 4 slots: one runs, two wait PENDING (Resources), and they run in order", async () => {
    const gate = join(dir, "gate-1");
    const { runs, jobs } = await submitInOrder(3, 2, gate);
    const [a, b, d] = jobs as [string, string, string];
    const [json, text] = await Promise.all([c.muster(["queue", "--json"]), c.muster(["queue"])]);
    expect(json.code, json.stderr).toBe(0);
    const queued = JSON.parse(json.stdout) as JobJson[];
    expect(queued.map((j) => [j.jobId, j.state, j.reason])).toEqual([
      [a, "RUNNING", "None"],
      [b, "PENDING", "Resources"],
      [d, "PENDING", "Resources"],
    ]);
    expect(byId(queued, b)!.startedAt).toBeUndefined();
    // The text table: a header, then one line per job; a pending job's NodeList is its reason.
    expect(text.code, text.stderr).toBe(0);
    const lines = text.stdout.trimEnd().split("\n");
    expect(lines[0]!.split(/\s+/)).toEqual(["JobID", "Name", "User", "State", "Time", "NTasks", "Nodes", "NodeList", "Reason"]);
    expect(lines.slice(1).map((l) => l.split(/\s+/))).toEqual([
      [a, "sleep", "alice", "RUNNING", expect.stringMatching(/^\d\d:\d\d:\d\d$/), "4", "2", "node-1,node-2", "None"],
      [b, "sleep", "alice", "PENDING", "00:00:00", "4", "0", "(Resources)", "Resources"],
      [d, "sleep", "alice", "PENDING", "00:00:00", "4", "0", "(Resources)", "Resources"],
    ]);
    // `muster run` of a waiting job says so.
    expect(runs[1]!.stderr()).toContain(`muster: job ${b} queued and waiting for resources`);
    writeFileSync(gate, "");

    const results = await Promise.all(runs.map((r) => r.done));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const views = (await Promise.all(jobs.map((j) => c.showJob(j)))) as JobJson[];
    for (const v of views) expect([v.state, v.exitCode]).toEqual(["COMPLETED", "0:0"]);
    for (let i = 1; i < views.length; i++) {
      expect(views[i]!.startedAt!, `job ${views[i]!.jobId} starts after job ${views[i - 1]!.jobId} ended`).toBeGreaterThanOrEqual(views[i - 1]!.endedAt!);
    }
    expect((await c.muster(["queue", "--json"])).stdout.trim()).toBe("[]");
  });

  it("kill of a PENDING job cancels it at once, and the queue moves on", async () => {
    const gate = join(dir, "gate-2");
    const { runs, jobs } = await submitInOrder(3, 1, gate);
    const [a, b, d] = jobs as [string, string, string];
    expect((await liveJobs()).map((j) => [j.jobId, j.state])).toEqual([
      [a, "RUNNING"],
      [b, "PENDING"],
      [d, "PENDING"],
    ]);
    const k = await c.muster(["kill", b]);
    expect(k.code, k.stderr).toBe(0);
    // Cancelled by the time kill returns, without ever starting.
    const view = (await c.showJob(b)) as JobJson;
    expect([view.state, view.reason, view.exitCode, view.derivedExitCode, view.startedAt, view.steps]).toEqual(["CANCELLED", "None", "0:0", "0:0", undefined, []]);
    expect(byId(await liveJobs(), a)!.state).toBe("RUNNING");
    const queue = await c.muster(["queue", "--parsable2", "--noheader", "--format", "JobID,State,Reason"]);
    expect(queue.stdout).toBe(`${a}|RUNNING|None\n${d}|PENDING|Resources\n`);
    // Its `muster run` ends at once too.
    const rb = await runs[1]!.done;
    expect(rb.code).toBe(1);
    expect(rb.stderr).toContain(`muster: error: job ${b} was cancelled before it started\n`);
    expect((await c.showJob(a)).state).toBe("RUNNING");
    writeFileSync(gate, "");

    const [ra, rd] = await Promise.all([runs[0]!.done, runs[2]!.done]);
    expect(ra.code, ra.stderr).toBe(0);
    expect(rd.code, rd.stderr).toBe(0);
    const [va, vd] = (await Promise.all([c.showJob(a), c.showJob(d)])) as JobJson[];
    expect(vd!.state).toBe("COMPLETED");
    expect(vd!.startedAt!).toBeGreaterThanOrEqual(va!.endedAt!);
    const h = await c.muster(["history", "-j", b, "--parsable2", "--format", "JobID,State,ExitCode,Start,NodeList"]);
    expect(h.stdout).toBe(`JobID|State|ExitCode|Start|NodeList\n${b}|CANCELLED|0:0|Unknown|\n`);
  });
});

describe("history", () => {
  let batchJob: string;
  let failedJob: string;
  let bobJob: string;

  beforeAll(async () => {
    // A batch job with two steps, a failed run job, and a job of another user.
    writeFileSync(join(dir, "two-steps.sh"), "#!/bin/sh\nmuster run -n 2 -- true\nmuster run -n 1 -- sh -c 'exit 2'\nexit 0\n", { mode: 0o755 });
    const b = c.start(["batch", "-n", "2", "--wait", "two-steps.sh"], { cwd: dir });
    const [rb, rf, rbob] = await Promise.all([b.done, c.muster(["run", "-v", "-n", "2", "--", "sh", "-c", "exit 5"]), c.muster(["run", "-v", "--", "true"], { env: { MUSTER_USER: "bob" } })]);
    expect(rb.code, rb.stderr).toBe(0);
    expect(rf.code, rf.stderr).toBe(5);
    expect(rbob.code, rbob.stderr).toBe(0);
    batchJob = /Submitted batch job (\S+)/.exec(rb.stdout)![1]!;
    failedJob = /muster: job (\S+):/.exec(rf.stderr)![1]!;
    bobJob = /muster: job (\S+):/.exec(rbob.stderr)![1]!;
  }, 60_000);

  const rowsOf = (jobs: readonly JobJson[]) =>
    jobs.flatMap((j) => [
      `${j.jobId}|${j.state}|${j.exitCode}`,
      ...[...j.steps].sort((x, y) => (x.stepId === "batch" ? -1 : y.stepId === "batch" ? 1 : Number(x.stepId) - Number(y.stepId))).map((s) => `${j.jobId}.${s.stepId}|${s.state}|${s.exitCode}`),
    ]);

  it("--parsable2 prints the header and one line per job and step; --noheader drops the header; --json matches show job", async () => {
    const [p, n, js] = await Promise.all([
      c.muster(["history", "--parsable2", "--format", "JobID,State,ExitCode"]),
      c.muster(["history", "-P", "--noheader", "--format", "JobID,State,ExitCode"]),
      c.muster(["history", "--json"]),
    ]);
    for (const r of [p, n, js]) expect(r.code, r.stderr).toBe(0);
    const jobs = JSON.parse(js.stdout) as JobJson[];
    expect(jobs.map((j) => j.jobId)).toContain(batchJob);
    expect(jobs.map((j) => Number(j.jobId))).toEqual(jobs.map((j) => Number(j.jobId)).sort((x, y) => x - y));
    expect(p.stdout).toBe(["JobID|State|ExitCode", ...rowsOf(jobs)].join("\n") + "\n");
    expect(n.stdout).toBe(rowsOf(jobs).join("\n") + "\n");
    for (const line of p.stdout.trimEnd().split("\n")) expect(line).toMatch(/^[^|]+\|[^|]+\|[^|]+$/);
    expect(p.stdout).toContain(`${batchJob}|COMPLETED|0:0\n${batchJob}.batch|COMPLETED|0:0\n${batchJob}.0|COMPLETED|0:0\n${batchJob}.1|FAILED|2:0\n`);
    expect(p.stdout).toContain(`${failedJob}|FAILED|5:0\n${failedJob}.0|FAILED|5:0\n`);

    const pick = (j: JobJson) => ({
      jobId: j.jobId,
      state: j.state,
      reason: j.reason,
      exitCode: j.exitCode,
      derivedExitCode: j.derivedExitCode,
      steps: [...j.steps].map((s) => ({ stepId: s.stepId, state: s.state, exitCode: s.exitCode })).sort((x, y) => x.stepId.localeCompare(y.stepId)),
    });
    // `show job` as the job's owner (bob's job is refused to alice).
    const show = async (j: JobJson) => JSON.parse((await c.muster(["show", "job", j.jobId, "--json"], { env: { MUSTER_USER: j.user } })).stdout) as JobJson;
    const shown = await Promise.all(jobs.map(show));
    expect(jobs.map(pick)).toEqual(shown.map(pick));
    expect(pick(jobs.find((j) => j.jobId === batchJob)!)).toMatchObject({ state: "COMPLETED", exitCode: "0:0", derivedExitCode: "2:0" });
  });

  it("filters by --state, --since, --user and -j", async () => {
    const all = JSON.parse((await c.muster(["history", "--json"])).stdout) as JobJson[];
    const ids = async (...args: string[]) => {
      const r = await c.muster(["history", "--json", ...args]);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as JobJson[]).map((j) => j.jobId);
    };
    const end = all.find((j) => j.jobId === batchJob)!.endedAt!;
    // Since the end of the batch job, to the second, as history prints it (UTC, no zone).
    const cut = new Date(Math.floor(end / 1000) * 1000).toISOString().replace(/\.\d+Z$/, "");
    const [failed, failedLower, cancelledOrFailed, bob, alice, some, lastDay, future, sinceCut] = await Promise.all([
      ids("--state", "FAILED"),
      ids("--state", "failed"),
      ids("-s", "CANCELLED,FAILED"),
      ids("--user", "bob"),
      ids("-u", "alice"),
      ids("-j", `${failedJob},${batchJob}`),
      ids("--since", "-1d"),
      ids("--since", new Date(Date.now() + 3_600_000).toISOString()),
      ids("--since", cut),
    ]);
    expect(failed).toEqual(all.filter((j) => j.state === "FAILED").map((j) => j.jobId));
    expect(failed).toContain(failedJob);
    expect(failedLower).toEqual(failed);
    expect(cancelledOrFailed).toEqual(all.filter((j) => j.state === "CANCELLED" || j.state === "FAILED").map((j) => j.jobId));
    expect(bob).toEqual([bobJob]);
    expect(alice).toEqual(all.filter((j) => j.jobId !== bobJob).map((j) => j.jobId));
    expect(some).toEqual([batchJob, failedJob].sort((x, y) => Number(x) - Number(y)));
    expect(lastDay).toEqual(all.map((j) => j.jobId));
    expect(future).toEqual([]);
    expect(sinceCut).toEqual(all.filter((j) => j.endedAt! >= Math.floor(end / 1000) * 1000).map((j) => j.jobId));
    expect(sinceCut).toContain(batchJob);
    const printed = await c.muster(["history", "-j", batchJob, "-P", "--noheader", "--format", "End"]);
    expect(printed.stdout.split("\n")[0]).toBe(cut);
  });

  it("a bad --format field or --state value exits 2 with a one-line error", async () => {
    const bad = await Promise.all([
      c.muster(["history", "--format", "JobID,Bogus"]),
      c.muster(["history", "--state", "RUNNING"]),
      c.muster(["history", "--state", "NOPE"]),
      c.muster(["queue", "--format", "Nope"]),
      c.muster(["history", "--since", "yesterday"]),
    ]);
    for (const r of bad) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(/^muster: error: [^\n]+\n$/);
    }
    expect(bad[0]!.stderr).toContain('unknown field "Bogus"');
    expect(bad[1]!.stderr).toContain("--state RUNNING: history lists ended jobs; see pending and running ones with muster queue -t RUNNING");
    expect(bad[2]!.stderr).toContain('unknown state "NOPE"');
    expect(bad[3]!.stderr).toContain('queue: unknown field "Nope"');
    expect(bad[4]!.stderr).toContain('bad time "yesterday"');
  });

  it("survives a restart of the supervisor and of nats-server: the same --parsable2 output", async () => {
    const before = await c.muster(["history", "--parsable2"]);
    expect(before.code, before.stderr).toBe(0);
    expect(before.stdout.split("\n").length).toBeGreaterThan(10);

    const old = c.supervisor;
    const exited = new Promise((r) => old.once("exit", r));
    old.kill("SIGTERM");
    await exited;
    await c.nats.stop();
    await c.nats.restart();
    await c.startSupervisor();

    const after = await waitFor(
      async () => {
        const r = await c.muster(["history", "--parsable2"], { timeoutMs: 10_000 });
        return r.code === 0 ? r : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, message: "history answers after the restart" },
    );
    expect(after.stdout).toBe(before.stdout);
    // The agents came back by themselves, and the next job gets the next id.
    await c.waitNodes(2);
    const last = Math.max(...before.stdout.split("\n").slice(1).filter(Boolean).map((l) => Number(l.split("|")[0]!.split(".")[0])));
    const r = await c.muster(["run", "-v", "-n", "4", "--", "true"]);
    expect(r.code, r.stderr).toBe(0);
    expect(Number(/muster: job (\S+):/.exec(r.stderr)![1])).toBe(last + 1);
  });
});

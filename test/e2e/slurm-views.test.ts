/**
 * A Slurm user's fingers on the read and control surfaces, end to end with real processes: `kill`
 * like scancel (`-s USR1` delivered to a task that traps it, several ids, `-n`, `-t`, `-u`), `JOB.STEP`
 * in show/watch/history/kill, `queue -t/-j/--me`, `show job`'s scontrol keys, and `nodes` with
 * allocated/idle/total slots while a job runs and an offline node kept over a supervisor restart.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StepViewSchema } from "../../src/protocol/index.js";
import { jobIdOf, jobOf, startCluster, type Cluster, type CommandResult } from "../support/cluster.js";
import { waitFor } from "../support/wait.js";

let c: Cluster;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "muster-views-"));
  c = await startCluster({ agents: 2, slots: 2 });
}, 60_000);

afterAll(async () => {
  await c?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The one stderr line of a failed command. */
function oneErrorLine(r: CommandResult): string {
  const lines = r.stderr.split("\n").filter(Boolean);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^muster: error: /);
  return lines[0]!;
}

/** `-P --noheader` lines of a table command. */
async function rows(args: string[], env?: Record<string, string>): Promise<string[]> {
  const r = await c.muster([...args, "-P", "--noheader"], { env });
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.split("\n").filter(Boolean);
}

const jobState = async (job: string, user?: string): Promise<string> => (await c.ctl("query", { type: "query", v: 1, what: "job", job }, user)).state;

describe("muster kill, like scancel", () => {
  it("`kill J -s USR1` delivers USR1 to a task that traps it (-s is kill's, not --server); the job runs on", async () => {
    const got = join(dir, "signals");
    const script = `trap 'echo USR1 >> ${got}' USR1; trap 'echo USR2 >> ${got}' USR2; echo ready; while :; do sleep 0.1; done`;
    const run = c.start(["run", "-v", "-n", "1", "--", "sh", "-c", script]);
    const job = await jobOf(run);
    await waitFor(() => run.stdout().includes("ready"), { timeoutMs: 20_000, message: "the task trapping USR1 is ready" });

    const k = await c.muster(["kill", job, "-s", "USR1"]);
    expect(k.code, k.stderr).toBe(0);
    expect(k.stderr).toBe("");
    await waitFor(() => existsSync(got) && readFileSync(got, "utf8").includes("USR1"), { timeoutMs: 15_000, message: "USR1 written by the task's trap" });
    const k2 = await c.muster(["kill", `${job}.0`, "--signal=SIGUSR2"]);
    expect(k2.code, k2.stderr).toBe(0);
    await waitFor(() => readFileSync(got, "utf8").includes("USR2"), { timeoutMs: 15_000, message: "USR2 written by the task's trap" });
    expect(readFileSync(got, "utf8").split("\n").filter(Boolean)).toEqual(["USR1", "USR2"]);
    expect(await jobState(job)).toBe("RUNNING");

    // Several ids: one unknown is reported on its own line, the other is still cancelled; exit 1.
    const both = await c.muster(["kill", "99999", job]);
    expect(both.code).toBe(1);
    expect(oneErrorLine(both)).toBe("muster: error: kill: no job 99999");
    const r = await run.done;
    expect(r.code).not.toBe(0);
    expect(await jobState(job)).toBe("CANCELLED");

    // A signal to a job that has ended cannot be delivered (scancel -s says so too); a cancel of it is a no-op.
    const late = await c.muster(["kill", "-s", "USR1", job]);
    expect(late.code).toBe(1);
    expect(oneErrorLine(late)).toBe(`muster: error: kill: job ${job} has ended: signal not sent`);
    const again = await c.muster(["kill", job]);
    expect([again.code, again.stderr]).toEqual([0, ""]);
  });

  it("bad ids, signals and states: exit 2, one line, nothing sent", async () => {
    const cases: [string[], RegExp][] = [
      [["kill", "1.x"], /^muster: error: kill: bad job id "1\.x": expected JOB or JOB\.STEP/],
      [["kill", "1", "-s", "NOPE"], /^muster: error: kill: unknown signal "NOPE"/],
      [["kill", "-t", "CD"], /^muster: error: kill: --state COMPLETED: only jobs that have not ended/],
      [["kill", "-t", "SUSPENDED"], /^muster: error: kill: unknown state "SUSPENDED"/],
      [["show", "job", "1.x"], /^muster: error: show job: bad job id "1\.x"/],
      [["watch", "1.0.0"], /^muster: error: watch: bad job id "1\.0\.0"/],
      [["history", "-j", "1,2.x"], /^muster: error: history: bad job id "2\.x"/],
      [["queue", "-j", "1.0"], /^muster: error: queue: "1\.0" is a step id; queue takes job ids/],
      [["queue", "-t", "XX"], /^muster: error: queue: unknown state "XX" in --states/],
      [["history", "-S", "yesterday"], /^muster: error: history: option --starttime: bad time "yesterday"/],
      [["nodes", "-o", "Node,CPUs"], /^muster: error: nodes: unknown field "CPUs"/],
    ];
    const results = await Promise.all(cases.map(([args]) => c.muster(args, { timeoutMs: 20_000 })));
    results.forEach((r, i) => {
      expect(r.code, `${cases[i]![0].join(" ")}: ${r.stderr}`).toBe(2);
      expect(r.stdout).toBe("");
      expect(oneErrorLine(r)).toMatch(cases[i]![1]);
    });
  });
});

describe("JOB.STEP and show job's scontrol keys", () => {
  let job: string;
  beforeAll(async () => {
    const r = await c.muster(["run", "-v", "-n", "2", "-t", "5", "--", "sh", "-c", "exit 0"]);
    expect(r.code, r.stderr).toBe(0);
    job = jobIdOf(r.stderr);
  });

  it("show job J: RunTime, TimeLimit, NodeList, NumTasks, Command, WorkDir; --json the same fields", async () => {
    const r = await c.muster(["show", "job", job]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ {3}RunTime=\d\d:\d\d:\d\d TimeLimit=00:05:00$/m);
    expect(r.stdout).toMatch(/^ {3}NodeList=node-\d(,node-\d)?$/m);
    expect(r.stdout).toMatch(/^ {3}NumNodes=[12] NumTasks=2$/m);
    expect(r.stdout).toMatch(/^ {3}Command=sh -c exit 0$/m);
    expect(r.stdout).toMatch(/^ {3}WorkDir=\//m);
    const v = await c.showJob(job);
    expect(v).toMatchObject({ argv: ["sh", "-c", "exit 0"], command: "sh -c exit 0", timeLimitSeconds: 300, ntasks: 2 });
    expect(v.runTimeSeconds).toBeGreaterThanOrEqual(0);
    expect(typeof v.workDir).toBe("string");
    expect(v.steps[0]).toMatchObject({ name: "sh", command: "sh -c exit 0", timeLimitSeconds: 300 });
  });

  it("show job J.0 and show step J.0 show that step; an unknown step exits 1 with one line", async () => {
    const r = await c.muster(["show", "job", `${job}.0`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^StepId=${job}\\.0 State=COMPLETED Reason=None ExitCode=0:0 NumTasks=2\\n`));
    expect(r.stdout).not.toContain("JobId=");
    expect(r.stdout).toMatch(/^ {3}Name=sh StartTime=\S+ EndTime=\S+ TimeLimit=00:05:00$/m);
    expect(r.stdout).toMatch(/^ {3}Command=sh -c exit 0$/m);
    const s = await c.muster(["show", "step", `${job}.0`]);
    expect(s.stdout).toBe(r.stdout);
    const j = await c.muster(["show", "job", `${job}.0`, "--json"]);
    const step = JSON.parse(j.stdout);
    expect(StepViewSchema.safeParse(step).error).toBeUndefined();
    expect(step).toMatchObject({ stepId: "0", state: "COMPLETED", name: "sh", argv: ["sh", "-c", "exit 0"] });
    const none = await c.muster(["show", "job", `${job}.3`]);
    expect(none.code).toBe(1);
    expect(oneErrorLine(none)).toBe(`muster: error: job ${job} has no step 3`);
  });

  it("watch J.0 prints that step's changes and ends; history -j J.0 prints that step's row, its JobName the executable", async () => {
    const w = await c.muster(["watch", `${job}.0`], { timeoutMs: 20_000 });
    expect(w.code, w.stderr).toBe(0);
    const lines = w.stdout.split("\n").filter(Boolean);
    expect(lines.at(-1)).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d StepId=${job}\\.0 State=COMPLETED Reason=None ExitCode=0:0$`));
    expect(w.stdout).not.toContain("JobId=");
    expect(await rows(["history", "-j", `${job}.0`, "-o", "JobID,JobName,State,Command"])).toEqual([`${job}.0|sh|COMPLETED|sh -c exit 0`]);
    expect(await rows(["history", "-j", `${job}.0`, "-X", "-o", "JobID"])).toEqual([job]);
    expect(await rows(["history", "-j", job, "-o", "JobID"])).toEqual([job, `${job}.0`]);
    expect(await rows(["history", "-j", job, "-X", "-s", "cd", "-S", "now-1hours", "-E", "now", "-o", "JobID,State"])).toEqual([`${job}|COMPLETED`]);
    expect(await rows(["history", "-j", job, "-X", "-s", "F,CA", "-o", "JobID"])).toEqual([]);
    const n = await c.muster(["history", "-j", job, "-n", "-o", "JobID"]);
    expect(n.stdout).toBe(`${job}\n${job}.0\n`);
  });

  it("a batch job shows StdOut and StdErr", async () => {
    const script = join(dir, "job.sh");
    writeFileSync(script, "#!/bin/sh\necho hi\n", { mode: 0o755 });
    const b = await c.muster(["batch", "-o", join(dir, "out-%j.txt"), script]);
    expect(b.code, b.stderr).toBe(0);
    const id = /Submitted batch job (\S+)/.exec(b.stdout)![1]!;
    const r = await c.muster(["show", "job", id]);
    expect(r.stdout).toContain(`\n   StdErr=${join(dir, `out-${id}.txt`)}\n   StdOut=${join(dir, `out-${id}.txt`)}`);
    expect(r.stdout).toContain(`\n   Command=${script}\n`);
  });
});

describe("queue filters, kill by name/state/user, and nodes' slots while a job runs", () => {
  it("queue -t/-j/--me; nodes alloc/idle/total; kill -n, -t PD (own jobs), -u", async () => {
    const done = jobIdOf((await c.muster(["run", "-v", "--", "true"])).stderr);
    const holder = c.start(["run", "-v", "-n", "4", "-J", "holder", "--", "sleep", "600"]);
    const a = await jobOf(holder);
    await waitFor(async () => (await c.ctl("query", { type: "query", v: 1, what: "job", job: a })).steps[0]?.tasks.every((t: any) => t.state === "running"), {
      timeoutMs: 20_000,
      message: "the holder's 4 tasks running",
    });
    const waiter = c.start(["run", "-v", "-n", "2", "-J", "waiter", "--", "true"]);
    const b = await waitFor(() => /muster: job (\S+) queued/.exec(waiter.stderr())?.[1], { timeoutMs: 20_000, message: "waiter queued" });
    const bobs = c.start(["run", "-v", "-n", "1", "-J", "bobs", "--", "true"], { env: { MUSTER_USER: "bob" } });
    const d = await waitFor(() => /muster: job (\S+) queued/.exec(bobs.stderr())?.[1], { timeoutMs: 20_000, message: "bob's job queued" });

    const q = (...args: string[]) => rows(["queue", "-o", "JobID,State", ...args]);
    expect(await q("-t", "PD")).toEqual([`${b}|PENDING`, `${d}|PENDING`]);
    expect(await q("-t", "r")).toEqual([`${a}|RUNNING`]);
    expect(await q("-t", "running,pending")).toEqual([`${a}|RUNNING`, `${b}|PENDING`, `${d}|PENDING`]);
    expect(await q("-j", `${b},${d}`)).toEqual([`${b}|PENDING`, `${d}|PENDING`]);
    expect(await q("--me")).toEqual([`${a}|RUNNING`, `${b}|PENDING`]);
    expect(await rows(["queue", "-o", "JobID", "--me"], { MUSTER_USER: "bob" })).toEqual([d]);
    expect(await q("-u", "bob", "-t", "PD")).toEqual([`${d}|PENDING`]);
    // -t CD reaches the finished jobs as well (squeue -t CD).
    const completed = await q("-t", "CD");
    expect(completed.every((l) => l.endsWith("|COMPLETED")), completed.join("\n")).toBe(true);
    expect(completed).toContain(`${done}|COMPLETED`);

    // A pending job waits while every slot is taken, and nodes says so.
    expect(await rows(["nodes", "-o", "Node,State,Alloc,Idle,Total"])).toEqual(["node-1|online|2|0|2", "node-2|online|2|0|2"]);
    const text = await c.muster(["nodes"]);
    expect(text.stdout.split("\n")[0]).toMatch(/^Node +State +Reason +Alloc +Idle +Total +Running +Since$/);
    expect(text.stdout).toMatch(/^node-1 +online +None +2 +0 +2 +2 +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/m);
    const json = JSON.parse((await c.muster(["nodes", "--json"])).stdout);
    expect(json.map((n: any) => [n.node, n.allocatedSlots, n.idleSlots, n.slots])).toEqual([
      ["node-1", 2, 0, 2],
      ["node-2", 2, 0, 2],
    ]);

    // kill -n: by job name.
    const byName = await c.muster(["kill", "-n", "waiter"]);
    expect([byName.code, byName.stderr]).toEqual([0, ""]);
    await waitFor(async () => (await jobState(b)) === "CANCELLED", { timeoutMs: 15_000, message: "waiter cancelled" });
    // kill -t PD without -u: only your own pending jobs (bob's stays).
    const mine = await c.muster(["kill", "-t", "PD"]);
    expect([mine.code, mine.stderr]).toEqual([0, ""]);
    expect(await jobState(d, "bob")).toBe("PENDING");
    const bobKill = await c.muster(["kill", "-u", "bob", "-t", "pending"], { env: { MUSTER_USER: "bob" } });
    expect([bobKill.code, bobKill.stderr]).toEqual([0, ""]);
    await waitFor(async () => (await jobState(d, "bob")) === "CANCELLED", { timeoutMs: 15_000, message: "bob's job cancelled" });
    expect(await jobState(a)).toBe("RUNNING");
    const holderKill = await c.muster(["kill", "--name", "holder", "-t", "R"]);
    expect(holderKill.code, holderKill.stderr).toBe(0);
    await Promise.all([holder.done, waiter.done, bobs.done]);
    expect(await jobState(a)).toBe("CANCELLED");
    expect(await rows(["nodes", "-o", "Node,Alloc,Idle,Total"])).toEqual(["node-1|0|2|2", "node-2|0|2|2"]);
  });
});

describe("an offline node", () => {
  it("is still listed, offline since its bye, after the supervisor restarts", async () => {
    const agent = c.agents.get("node-2")!;
    agent.kill("SIGTERM");
    const before = await waitFor(async () => (await c.nodes()).find((n) => n.node === "node-2" && n.state === "offline"), { timeoutMs: 20_000, message: "node-2 offline" });
    expect(before.reason).toBe("Shutdown");

    const restartedAt = Date.now();
    const old = c.supervisor;
    const exited = new Promise((r) => old.once("exit", r));
    old.kill("SIGTERM");
    await exited;
    await c.startSupervisor();
    const after = await waitFor(
      async () => {
        try {
          return await c.nodes();
        } catch {
          return undefined;
        }
      },
      { timeoutMs: 30_000, message: "the restarted supervisor answers" },
    );
    const row = after.find((n) => n.node === "node-2") as any;
    expect(row).toMatchObject({ state: "offline", reason: "Shutdown", slots: 2, idleSlots: 0 });
    // Since the bye (the agent's own time of it, a few ms before the supervisor heard it), not since the restart.
    expect(Math.abs(row.since - before.since!)).toBeLessThan(1000);
    expect(row.since).toBeLessThan(restartedAt);
    expect(await rows(["nodes", "-o", "Node,State,Reason,Total"])).toEqual(["node-1|online|None|2", "node-2|offline|Shutdown|2"]);
  });
});

/**
 * The `muster` CLI end to end through the built binary: usage errors (one line, exit 2), help,
 * unreachable NATS or supervisor (one line, exit 1), `show job` text and JSON, `watch`, `--label`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { COMMANDS } from "../../src/cli/specs.js";
import { JobViewSchema } from "../../src/protocol/index.js";
import { jobIdOf, startCluster, type Cluster, type CommandResult } from "../support/cluster.js";
import { startNatsServer, uniquePrefix, type NatsServerHandle } from "../support/nats-fixture.js";
import { waitFor } from "../support/wait.js";

let c: Cluster;

beforeAll(async () => {
  c = await startCluster({ agents: 3, slots: 2 });
}, 60_000);

afterAll(async () => {
  await c?.stop();
});

/** Asserts exactly one line of stderr, `muster: error: …`, and returns it. */
function oneErrorLine(r: CommandResult): string {
  const lines = r.stderr.split("\n");
  expect(lines.at(-1), `stderr must end with a newline: ${JSON.stringify(r.stderr)}`).toBe("");
  expect(lines.length - 1, `stderr must be one line: ${JSON.stringify(r.stderr)}`).toBe(1);
  expect(lines[0]).toMatch(/^muster: error: \S/);
  return lines[0]!;
}

/** Every command the binary knows (the source's table; the help of the built binary must list each). */
const ALL_COMMANDS = Object.keys(COMMANDS);

describe("usage errors: one line naming the bad argument, exit status 2", () => {
  const cases: [string[], RegExp][] = [
    [["bogus"], /unknown command "bogus"/],
    [["run", "--bogus", "--", "true"], /run: unknown option --bogus/],
    [["run", "-n"], /run: option -n needs a value/],
    [["run", "-n", "x", "--", "true"], /run: option -n .*"x"/],
    [["run", "--ntasks=x", "--", "true"], /run: option --ntasks .*"x"/],
    [["run"], /run: no command given/],
    [["run", "-n", "2"], /run: no command given/],
    [["run", "-t", "1:2:3:4", "--", "true"], /run: option --time: bad time limit "1:2:3:4"/],
    [["run", "-n", "0", "--", "true"], /run: option --ntasks must be at least 1/],
    [["kill"], /kill: expected JOB/],
    [["kill", "1.x.y"], /kill: bad job id "1\.x\.y"/],
    [["kill", "a*b"], /kill: bad job id "a\*b"/],
    [["kill", "--signal", "FOO", "1"], /kill: unknown signal "FOO"/],
    [["kill", "--signal", "99", "1"], /kill: unknown signal "99"/],
    [["show"], /show: expected 'show job ID'/],
    [["show", "job"], /show: expected 'show job ID'/],
    [["show", "jobs", "1"], /show: expected 'show job ID'/],
    [["show", "job", "1", "--bogus"], /show: unknown option --bogus/],
    [["watch"], /watch: expected one job id/],
    [["nodes", "extra"], /nodes: takes no arguments/],
    [["nodes", "--json=yes"], /nodes: option --json takes no value/],
    [["nodes", "--timeout", "soon"], /nodes: option --timeout .*"soon"/],
  ];
  for (const [args, message] of cases) {
    it(`muster ${args.join(" ")}`, async () => {
      // Usage errors come before any connection: even with NATS unreachable they are exit 2.
      for (const env of [{}, { NATS_URL: "nats://127.0.0.1:1" }] as Record<string, string>[]) {
        const r = await c.muster(args, { env, timeoutMs: 15_000 });
        expect(r.code, r.stderr).toBe(2);
        expect(oneErrorLine(r)).toMatch(message);
        expect(r.stdout).toBe("");
      }
    });
  }
});

describe("help", () => {
  it("muster --help exits 0 and lists every command", async () => {
    expect(ALL_COMMANDS).toEqual(expect.arrayContaining(["run", "show", "watch", "kill", "nodes", "up", "supervisor", "agent"]));
    for (const flag of ["--help", "-h", "help"]) {
      const r = await c.muster([flag]);
      expect(r.code, r.stderr).toBe(0);
      for (const cmd of ALL_COMMANDS) expect(r.stdout).toMatch(new RegExp(`^  ${cmd} +\\S`, "m"));
      expect(r.stderr).toBe("");
    }
  });

  it("muster with no command prints the help and exits 2", async () => {
    const r = await c.muster([]);
    expect(r.code).toBe(2);
    for (const cmd of ALL_COMMANDS) expect(r.stdout).toMatch(new RegExp(`^  ${cmd} +\\S`, "m"));
  });

  it("muster run --help lists run's options and exits 0", async () => {
    const r = await c.muster(["run", "--help"], { env: { NATS_URL: "nats://127.0.0.1:1" } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Usage: muster run /m);
    for (const opt of ["-n, --ntasks", "-N, --nodes", "--ntasks-per-node", "-l, --label", "-K, --kill-on-bad-exit", "-W, --wait", "-t, --time", "--kill-wait", "-J, --job-name", "-v, --verbose"]) {
      expect(r.stdout).toContain(opt);
    }
  });

  it("every command has --help", async () => {
    for (const cmd of ALL_COMMANDS) {
      const r = await c.muster([cmd, "--help"], { env: { NATS_URL: "nats://127.0.0.1:1" }, timeoutMs: 15_000 });
      expect([cmd, r.code]).toEqual([cmd, 0]);
      expect(r.stdout).toMatch(new RegExp(`^Usage: muster ${cmd}`, "m"));
    }
  });
});

describe("nothing to talk to", () => {
  let bare: NatsServerHandle;
  beforeAll(async () => {
    bare = await startNatsServer();
  });
  afterAll(async () => {
    await bare?.cleanup();
  });

  const CLIENT_COMMANDS = [["nodes"], ["show", "job", "1"], ["watch", "1"], ["kill", "1"], ["run", "--", "true"]];

  it("no supervisor on a reachable NATS: exit 1, one line naming `muster up`", async () => {
    for (const args of CLIENT_COMMANDS) {
      // NATS_TIMEOUT bounds the connect; no responders fails within a second whatever it is.
      const r = await c.muster(args, { env: { NATS_URL: bare.url, MUSTER_PREFIX: uniquePrefix("nosup"), NATS_TIMEOUT: "1" }, timeoutMs: 20_000 });
      expect([args.join(" "), r.code], r.stderr).toEqual([args.join(" "), 1]);
      expect(oneErrorLine(r)).toMatch(/no supervisor.*muster up/);
    }
  });

  it("NATS not reachable: exit 1 with one clear line, quickly", async () => {
    for (const args of CLIENT_COMMANDS) {
      const started = Date.now();
      const r = await c.muster(args, { env: { NATS_URL: "nats://127.0.0.1:1" }, timeoutMs: 20_000 });
      expect([args.join(" "), r.code], r.stderr).toEqual([args.join(" "), 1]);
      expect(oneErrorLine(r)).toMatch(/cannot connect to NATS at nats:\/\/127\.0\.0\.1:1/);
      expect(Date.now() - started).toBeLessThan(10_000);
    }
  });
});

describe("show job", () => {
  let job: string;
  beforeAll(async () => {
    const r = await c.muster(["run", "-v", "-n", "3", "--", "sh", "-c", "exit $MUSTER_TASK_ID"]);
    expect(r.code, r.stderr).toBe(2);
    job = jobIdOf(r.stderr);
  });

  it("an unknown job: exit 1, `no job 99999`", async () => {
    const r = await c.muster(["show", "job", "99999"]);
    expect(r.code).toBe(1);
    expect(oneErrorLine(r)).toMatch(/no job 99999/);
    const w = await c.muster(["watch", "99999"], { timeoutMs: 15_000 });
    expect(w.code).toBe(1);
    expect(oneErrorLine(w)).toMatch(/no job 99999/);
    const k = await c.muster(["kill", "99999"]);
    expect(k.code).toBe(1);
    expect(oneErrorLine(k)).toMatch(/no job 99999/);
  });

  it("text: the scontrol-style keys, the step line and a task table", async () => {
    const r = await c.muster(["show", "job", job]);
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(new RegExp(`^JobId=${job} `, "m"));
    expect(out).toMatch(/JobState=FAILED /);
    expect(out).toMatch(/ Reason=NonZeroExitCode /);
    expect(out).toMatch(/ ExitCode=2:0 /);
    expect(out).toMatch(/ DerivedExitCode=\d+:\d+/);
    expect(out).toMatch(new RegExp(`^StepId=${job}\\.0 State=FAILED Reason=NonZeroExitCode ExitCode=2:0 NumTasks=3`, "m"));
    expect(out).toMatch(/^ +RANK +NODE +STATE +EXITCODE\b/m);
    for (const rank of [0, 1, 2]) expect(out).toMatch(new RegExp(`^ +${rank} +node-\\d+ +\\S+ +${rank}:0\\b`, "m"));
  });

  it("--json: the documented fields", async () => {
    const r = await c.muster(["show", "job", job, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const view = JSON.parse(r.stdout);
    expect(JobViewSchema.safeParse(view).error).toBeUndefined();
    expect(view).toMatchObject({ jobId: job, state: "FAILED", reason: "NonZeroExitCode", exitCode: "2:0", derivedExitCode: expect.stringMatching(/^\d+:\d+$/) });
    expect(view.steps).toHaveLength(1);
    const step = view.steps[0];
    expect(step).toMatchObject({ stepId: "0", state: "FAILED", reason: "NonZeroExitCode", exitCode: "2:0" });
    expect(step.tasks.map((t: { rank: number; node: string; state: string; exitCode: string }) => [t.rank, t.exitCode])).toEqual([
      [0, "0:0"],
      [1, "1:0"],
      [2, "2:0"],
    ]);
    for (const t of step.tasks) {
      expect(t.node).toMatch(/^node-[123]$/);
      expect(typeof t.state).toBe("string");
    }
  });
});

describe("watch", () => {
  it("on a finished job prints its state changes and the notifications, then exits 0", async () => {
    const run = await c.muster(["run", "-v", "-n", "3", "--", "sh", "-c", "exit $MUSTER_TASK_ID"]);
    const job = jobIdOf(run.stderr);
    const r = await c.muster(["watch", job], { timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(0);
    const jobStates = [...r.stdout.matchAll(new RegExp(`JobId=${job} State=(\\w+)`, "g"))].map((m) => m[1]);
    expect(jobStates).toContain("RUNNING");
    expect(jobStates.at(-1)).toBe("FAILED");
    expect(jobStates.indexOf("RUNNING")).toBeLessThan(jobStates.indexOf("FAILED"));
    expect(r.stdout).toMatch(new RegExp(`StepId=${job}\\.0 State=RUNNING`));
    expect(r.stdout).toMatch(new RegExp(`StepId=${job}\\.0 State=FAILED Reason=NonZeroExitCode ExitCode=2:0`));
    expect(r.stdout).toMatch(new RegExp(`JobId=${job} State=FAILED Reason=NonZeroExitCode ExitCode=2:0`));
    expect(r.stdout).toContain("Task Exit Code Summary");
    // The last line is the job's final state.
    expect(r.stdout.trimEnd().split("\n").at(-1)).toMatch(new RegExp(`JobId=${job} State=FAILED`));

    const j = await c.muster(["watch", job, "--json"], { timeoutMs: 20_000 });
    expect(j.code, j.stderr).toBe(0);
    const msgs = j.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as { type: string; step?: number; state?: string });
    expect(msgs.map((m) => m.type)).toEqual(expect.arrayContaining(["job.state", "step.first_failure", "step.summary"]));
    expect(msgs.at(-1)).toMatchObject({ type: "job.state", state: "FAILED" });
  });

  it("on a running job follows it until it ends", async () => {
    const run = c.start(["run", "-v", "-n", "2", "--", "sh", "-c", "sleep 3; exit 0"]);
    const job = await waitFor(() => /muster: job (\S+):/.exec(run.stderr())?.[1], { timeoutMs: 20_000, message: "job id" });
    const started = Date.now();
    const watch = c.start(["watch", job]);
    let watchEndedAt = 0;
    let runEndedAt = 0;
    const [w, r] = await Promise.all([
      watch.done.then((x) => ((watchEndedAt = Date.now()), x)),
      run.done.then((x) => ((runEndedAt = Date.now()), x)),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(w.code, w.stderr).toBe(0);
    expect(watchEndedAt - started).toBeGreaterThan(1500);
    expect(Math.abs(watchEndedAt - runEndedAt)).toBeLessThan(3000);
    expect(w.stdout).toMatch(new RegExp(`JobId=${job} State=RUNNING`));
    expect(w.stdout.trimEnd().split("\n").at(-1)).toMatch(new RegExp(`JobId=${job} State=COMPLETED Reason=None ExitCode=0:0`));
  });
});

describe("run --label", () => {
  it("prefixes every output line with `RANK: `, on stdout and stderr", async () => {
    const r = await c.muster(["run", "-l", "-n", "3", "--", "sh", "-c", 'echo "a $MUSTER_TASK_ID"; echo "b $MUSTER_TASK_ID"; echo "e $MUSTER_TASK_ID" >&2; printf "tail"']);
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout.trimEnd().split("\n");
    expect(out).toHaveLength(9);
    for (const l of out) expect(l).toMatch(/^[0-2]: /);
    for (const rank of [0, 1, 2]) {
      expect(out).toContain(`${rank}: a ${rank}`);
      expect(out).toContain(`${rank}: b ${rank}`);
      expect(out).toContain(`${rank}: tail`);
      expect(r.stderr).toContain(`${rank}: e ${rank}\n`);
    }
    // Lines of one task stay in order.
    expect(out.indexOf("1: a 1")).toBeLessThan(out.indexOf("1: b 1"));
  });

  it("without --label the output is passed through as is", async () => {
    const r = await c.muster(["run", "-n", "2", "--", "sh", "-c", 'echo "x $MUSTER_TASK_ID"']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trimEnd().split("\n").sort()).toEqual(["x 0", "x 1"]);
  });
});

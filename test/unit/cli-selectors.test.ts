/**
 * How the CLI reads what a Slurm user types to pick jobs: JOB.STEP ids, state lists with Slurm's
 * abbreviations, sacct's times, scancel's options, and the rows queue/history/nodes print from them.
 */
import { describe, expect, it } from "vitest";
import { parseArgs } from "../../src/cli/args.js";
import { parseChartArgs } from "../../src/cli/commands/chart.js";
import { matchesKillFilters, parseKill } from "../../src/cli/commands/kill.js";
import { nodesOutput, parseNodeFields } from "../../src/cli/commands/nodes.js";
import { parseHistorySelection, parseQueueSelection, selectRows, tableOutput } from "../../src/cli/commands/tables.js";
import { formatTimeLimit, renderJob, renderStep } from "../../src/cli/render.js";
import { parseJobStepId, parseJobStepIds, parseSlurmTime, parseStates } from "../../src/cli/selectors.js";
import { COMMANDS } from "../../src/cli/specs.js";
import { MusterError } from "../../src/errors.js";
import type { JobView, NodeView, StepView } from "../../src/protocol/index.js";

const args = (command: string, argv: string[]) => parseArgs(command, argv, COMMANDS[command]!.options);

/** Runs `fn`, expecting a USAGE error whose message matches `message`. */
function usage(fn: () => unknown, message: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(MusterError);
    expect((e as MusterError).code).toBe("USAGE");
    expect((e as MusterError).message).toMatch(message);
    expect((e as MusterError).message).not.toContain("\n");
    return;
  }
  throw new Error(`expected a usage error matching ${message}`);
}

describe("job and step ids", () => {
  it("JOB, JOB.N and JOB.batch", () => {
    expect(parseJobStepId("12", "show")).toEqual({ job: "12" });
    expect(parseJobStepId("12.0", "show")).toEqual({ job: "12", step: 0 });
    expect(parseJobStepId("12.15", "show")).toEqual({ job: "12", step: 15 });
    expect(parseJobStepId("12.batch", "show")).toEqual({ job: "12", step: "batch" });
    expect(parseJobStepId("my_job-1", "show")).toEqual({ job: "my_job-1" });
  });

  it("anything else is a one-line usage error naming the command and the id", () => {
    for (const bad of ["", "1.x", "1.0.0", "a*b", "1.", ".0", "1,2", "x".repeat(129)]) usage(() => parseJobStepId(bad, "watch"), /^watch: bad job id ".*": expected JOB or JOB\.STEP/);
  });

  it("chart --job 12.0 is --job 12 --step 0; a second step is refused", () => {
    expect(parseChartArgs(args("chart", ["--job", "12.0", "--rank", "1"]))).toEqual({ kind: "job", job: "12", step: "0", rank: 1, format: "text" });
    expect(parseChartArgs(args("chart", ["--job", "12.batch"]))).toMatchObject({ job: "12", step: "batch" });
    usage(() => parseChartArgs(args("chart", ["--job", "12.0", "--step", "1"])), /^chart: --job 12\.0 names a step already; drop --step$/);
    usage(() => parseChartArgs(args("chart", ["--job", "12.x"])), /^chart: bad job id "12\.x"/);
  });

  it("where steps make no sense, a step id says so", () => {
    usage(() => parseJobStepIds("3,4.0", "queue", { allowStep: false }), /^queue: "4\.0" is a step id; queue takes job ids/);
    expect(parseJobStepIds("3, 4 ,5.batch", "history")).toEqual([{ job: "3" }, { job: "4" }, { job: "5", step: "batch" }]);
    usage(() => parseJobStepIds(",", "history"), /history: expected job ids/);
  });
});

describe("states", () => {
  it("full names and Slurm's abbreviations, any case; all", () => {
    expect(parseStates("CD,F,CA,TO,NF,R,PD,CG", "x", "-t")).toEqual(["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "RUNNING", "PENDING", "COMPLETING"]);
    expect(parseStates("pending, Running,cd", "x", "-t")).toEqual(["PENDING", "RUNNING", "COMPLETED"]);
    expect(parseStates("failed,F", "x", "-t")).toEqual(["FAILED"]);
    expect(parseStates("all", "x", "-t")).toHaveLength(8);
  });

  it("an unknown state lists the states and their abbreviations", () => {
    usage(() => parseStates("R,SUSPENDED", "queue", "--states"), /^queue: unknown state "SUSPENDED" in --states \(states: PENDING\(PD\),RUNNING\(R\),.*NODE_FAIL\(NF\), or all\)$/);
    usage(() => parseStates("", "queue", "--states"), /needs at least one state/);
  });
});

describe("times (history -S/-E)", () => {
  const now = Date.UTC(2026, 11, 7, 19, 30, 15);
  it("ISO dates and date/times in UTC, HH:MM[:SS] today, now[+-]N[unit], -30m", () => {
    expect(parseSlurmTime("2026-12-07", now, "history", "-S")).toBe(Date.UTC(2026, 11, 7));
    expect(parseSlurmTime("2026-12-07T10:00", now, "history", "-S")).toBe(Date.UTC(2026, 11, 7, 10));
    expect(parseSlurmTime("2026-12-07T10:00:05", now, "history", "-S")).toBe(Date.UTC(2026, 11, 7, 10, 0, 5));
    expect(parseSlurmTime("2026-12-07T10:00:05.250Z", now, "history", "-S")).toBe(Date.UTC(2026, 11, 7, 10, 0, 5, 250));
    expect(parseSlurmTime("2026-12-07T10:00:05+01:00", now, "history", "-S")).toBe(Date.UTC(2026, 11, 7, 9, 0, 5));
    expect(parseSlurmTime("08:15", now, "history", "-S")).toBe(Date.UTC(2026, 11, 7, 8, 15));
    expect(parseSlurmTime("now", now, "history", "-E")).toBe(now);
    expect(parseSlurmTime("now-2hours", now, "history", "-S")).toBe(now - 2 * 3600_000);
    expect(parseSlurmTime("now-90", now, "history", "-S")).toBe(now - 90_000);
    expect(parseSlurmTime("now+1days", now, "history", "-E")).toBe(now + 86400_000);
    expect(parseSlurmTime("-30m", now, "history", "-S")).toBe(now - 30 * 60_000);
  });

  it("anything else is a usage error naming the option", () => {
    for (const bad of ["yesterday", "now-2fortnights", "25:00", "2026-13-45", "12/07"]) usage(() => parseSlurmTime(bad, now, "history", "--starttime"), /^history: option --starttime: bad time/);
  });
});

describe("muster kill's arguments (scancel's)", () => {
  it("-s is kill's own --signal, not the connection flag --server", () => {
    const a = args("kill", ["21", "-s", "USR1"]);
    expect(a.options).toEqual({ signal: "USR1" });
    expect(parseKill(a)).toMatchObject({ ids: [{ job: "21" }], signal: 10 });
    expect(parseKill(args("kill", ["--signal=SIGUSR2", "21.0"]))).toMatchObject({ ids: [{ job: "21", step: 0 }], signal: 12 });
  });

  it("several ids, JOB.STEP among them", () => {
    expect(parseKill(args("kill", ["3", "4", "5.0", "6.batch"])).ids).toEqual([{ job: "3" }, { job: "4" }, { job: "5", step: 0 }, { job: "6", step: "batch" }]);
  });

  it("-u, -n and -t pick jobs, alone or with ids; -t takes abbreviations", () => {
    const plan = parseKill(args("kill", ["-u", "bob", "-n", "train", "-t", "pd,R"]));
    expect(plan).toMatchObject({ ids: [], user: "bob", name: "train", states: ["PENDING", "RUNNING"] });
    const job = (over: Partial<JobView>) => ({ jobId: "1", user: "bob", name: "train", state: "PENDING", ...over }) as JobView;
    expect(matchesKillFilters(plan, job({}))).toBe(true);
    expect(matchesKillFilters(plan, job({ user: "alice" }))).toBe(false);
    expect(matchesKillFilters(plan, job({ name: "eval" }))).toBe(false);
    expect(matchesKillFilters(plan, job({ state: "COMPLETING" }))).toBe(false);
  });

  it("bad input: one line, nothing sent", () => {
    usage(() => parseKill(args("kill", [])), /^kill: expected JOB\[\.STEP\] \.\.\. or a filter/);
    usage(() => parseKill(args("kill", ["1", "-s", "NOPE"])), /^kill: unknown signal "NOPE"/);
    usage(() => parseKill(args("kill", ["1", "2.x"])), /^kill: bad job id "2\.x"/);
    usage(() => parseKill(args("kill", ["-t", "CD"])), /^kill: --state COMPLETED: only jobs that have not ended/);
    usage(() => parseKill(args("kill", ["-t", "SUSPENDED"])), /^kill: unknown state "SUSPENDED"/);
  });
});

const T0 = Date.UTC(2026, 11, 7, 10, 0, 0);

function step(stepId: string, over: Partial<StepView> = {}): StepView {
  return {
    stepId,
    state: "COMPLETED",
    reason: "None",
    exitCode: "0:0",
    ntasks: 2,
    failedNodes: [],
    groups: { "exited:0": "0-1" },
    killedByRuntime: "",
    nodes: { "node-1": "0-1" },
    launchedAt: T0 + 1000,
    endedAt: T0 + 6000,
    tasks: [],
    tasksOmitted: false,
    ...over,
  } as StepView;
}

function job(jobId: string, over: Partial<JobView> = {}): JobView {
  return {
    jobId,
    name: "train.sh",
    user: "alice",
    kind: "batch",
    state: "COMPLETED",
    reason: "None",
    exitCode: "0:0",
    derivedExitCode: "0:0",
    failedNodes: [],
    ntasks: 2,
    nodes: ["node-1"],
    submittedAt: T0,
    startedAt: T0 + 500,
    endedAt: T0 + 7000,
    steps: [step("0", { name: "python3", argv: ["/usr/bin/python3", "train.py"], command: "/usr/bin/python3 train.py" }), step("batch", { name: "batch", ntasks: 1 })],
    ...over,
  };
}

describe("history's rows", () => {
  const jobs = [job("3"), job("4", { state: "FAILED", submittedAt: T0 + 60_000, endedAt: T0 + 70_000 }), job("5", { user: "bob" })];
  const ids = (argv: string[]) => selectRows(jobs, parseHistorySelection(args("history", argv), T0 + 3600_000)).map((r) => (r.step ? `${r.job.jobId}.${r.step.stepId}` : r.job.jobId));

  it("every job with its steps, the batch step first; -X: job rows only", () => {
    expect(ids([])).toEqual(["3", "3.batch", "3.0", "4", "4.batch", "4.0", "5", "5.batch", "5.0"]);
    expect(ids(["-X"])).toEqual(["3", "4", "5"]);
  });

  it("-j JOB.STEP: only that step's row (sacct -j 3.0); with -X the job's row; with JOB too, everything of the job", () => {
    expect(ids(["-j", "3.0"])).toEqual(["3.0"]);
    expect(ids(["-j", "3.0,4.batch"])).toEqual(["3.0", "4.batch"]);
    expect(ids(["-j", "3.0", "-X"])).toEqual(["3"]);
    expect(ids(["-j", "3.0,3"])).toEqual(["3", "3.batch", "3.0"]);
    expect(ids(["-j", "3.7"])).toEqual([]);
  });

  it("-s with abbreviations, -u, -S (ended at or after), -E (submitted at or before)", () => {
    expect(ids(["-X", "-s", "f"])).toEqual(["4"]);
    expect(ids(["-X", "-s", "CD,F"])).toEqual(["3", "4", "5"]);
    expect(ids(["-X", "-u", "bob"])).toEqual(["5"]);
    expect(ids(["-X", "-S", "2026-12-07T10:01:00"])).toEqual(["4"]);
    expect(ids(["-X", "--since", "2026-12-07T10:01:00"])).toEqual(["4"]);
    expect(ids(["-X", "-E", "2026-12-07T10:00:30"])).toEqual(["3", "5"]);
    expect(ids(["-X", "-S", "2026-12-07T10:00:05", "-E", "2026-12-07T10:00:30"])).toEqual(["3", "5"]);
    usage(() => ids(["-s", "R"]), /^history: --state RUNNING: history lists ended jobs; see pending and running ones with muster queue -t RUNNING$/);
    usage(() => ids(["-S", "-1d", "--since", "-2d"]), /give --starttime or --since, not both/);
  });

  it("a step row's JobName is its executable (sacct), Command its whole argv; -n drops the header", () => {
    const text = tableOutput(jobs, parseHistorySelection(args("history", ["-j", "3", "-P", "-n", "-o", "JobID,JobName,Command,TimeLimit"]), T0), args("history", ["-P", "-n"]), T0);
    expect(text).toBe(["3|train.sh||UNLIMITED", "3.batch|batch||UNLIMITED", "3.0|python3|/usr/bin/python3 train.py|UNLIMITED", ""].join("\n"));
  });
});

describe("queue's selection", () => {
  const live = [job("7", { state: "RUNNING", endedAt: undefined }), job("8", { state: "PENDING", user: "bob", endedAt: undefined, startedAt: undefined }), job("9", { state: "COMPLETED" })];
  const ids = (argv: string[], me = "alice") => selectRows(live, parseQueueSelection(args("queue", argv), me)).map((r) => r.job.jobId);

  it("live states by default; -t with abbreviations; -j; -u; --me", () => {
    expect(ids([])).toEqual(["7", "8"]);
    expect(ids(["-t", "pd"])).toEqual(["8"]);
    expect(ids(["-t", "R,CD"])).toEqual(["7", "9"]);
    expect(ids(["-t", "all"])).toEqual(["7", "8", "9"]);
    expect(ids(["-j", "8,9"])).toEqual(["8"]);
    expect(ids(["-u", "bob"])).toEqual(["8"]);
    expect(ids(["--me"])).toEqual(["7"]);
    expect(ids(["--me"], "bob")).toEqual(["8"]);
  });

  it("bad input is a usage error", () => {
    usage(() => ids(["-j", "7.0"]), /queue: "7\.0" is a step id/);
    usage(() => ids(["-t", "XX"]), /queue: unknown state "XX" in --states/);
    usage(() => ids(["--me", "-u", "bob"]), /queue: --me \(alice\) and --user bob contradict each other/);
  });
});

describe("show job's text", () => {
  it("scontrol's keys: RunTime, TimeLimit, NodeList, NumTasks, Command, WorkDir, StdOut/StdErr", () => {
    const text = renderJob(
      job("3", { argv: ["train.sh", "--fast"], command: "train.sh --fast", workDir: "/home/alice", stdOut: "/home/alice/muster-3.out", stdErr: "/home/alice/muster-3.err", timeLimitSeconds: 90, runTimeSeconds: 6 }),
    );
    expect(text).toContain("\n   RunTime=00:00:06 TimeLimit=00:01:30\n");
    expect(text).toContain("\n   NodeList=node-1\n   NumNodes=1 NumTasks=2\n   Command=train.sh --fast\n   WorkDir=/home/alice\n   StdErr=/home/alice/muster-3.err\n   StdOut=/home/alice/muster-3.out\n");
    expect(renderJob(job("4", { nodes: [], runTimeSeconds: 0 }))).toContain("RunTime=00:00:00 TimeLimit=UNLIMITED\n");
    expect(formatTimeLimit(2 * 86400 + 1)).toBe("2-00:00:01");
  });

  it("a step block: Name, times, TimeLimit, NodeList, Command", () => {
    const lines = renderStep("3", step("0", { name: "python3", command: "/usr/bin/python3 train.py", timeLimitSeconds: 60 }));
    expect(lines.slice(0, 5)).toEqual([
      "StepId=3.0 State=COMPLETED Reason=None ExitCode=0:0 NumTasks=2",
      "   Name=python3 StartTime=2026-12-07T10:00:01 EndTime=2026-12-07T10:00:06 TimeLimit=00:01:00",
      "   NodeList=node-1",
      "   Nodes=node-1[0-1]",
      "   Command=/usr/bin/python3 train.py",
    ]);
  });
});

describe("nodes' table", () => {
  const nodes: NodeView[] = [
    { node: "node-1", state: "online", epoch: "e1", slots: 4, since: T0, lastSeenAt: T0 + 1500, runningTasks: 2, allocatedSlots: 3, idleSlots: 1 },
    { node: "node-2", state: "offline", reason: "Shutdown", epoch: "e2", slots: 2, since: T0 + 2000, runningTasks: 0, allocatedSlots: 0, idleSlots: 0 },
  ];
  it("allocated, idle and total slots; times as every command prints them (no ms, no Z)", () => {
    expect(nodesOutput(nodes, args("nodes", []))).toBe(
      [
        "Node   State   Reason   Alloc Idle Total Running Since",
        "node-1 online  None     3     1    4     2       2026-12-07T10:00:00",
        "node-2 offline Shutdown 0     0    2     0       2026-12-07T10:00:02",
        "",
      ].join("\n"),
    );
  });

  it("--format (any case), -P, --noheader, --json", () => {
    expect(nodesOutput(nodes, args("nodes", ["-o", "node,ALLOC,idle,total,lastseen", "-P", "--noheader"]))).toBe("node-1|3|1|4|2026-12-07T10:00:01\nnode-2|0|0|2|Unknown\n");
    expect(JSON.parse(nodesOutput(nodes, args("nodes", ["--json"])))).toEqual(nodes);
    usage(() => parseNodeFields("Node,CPUs"), /^nodes: unknown field "CPUs" in --format \(fields: Node,State,/);
  });
});

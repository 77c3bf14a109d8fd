import { describe, expect, it } from "vitest";
import {
  EXIT_OK,
  MAX_SIGNAL,
  compareSeverity,
  decideJob,
  decideStep,
  decodeNodeExit,
  decodeWaitStatus,
  describeGroupKey,
  encodeWaitStatus,
  exited,
  formatExitCode,
  groupTasks,
  isBadOutcome,
  outcomeExitCode,
  outcomeKey,
  parseExitCode,
  parseGroupKey,
  parseSignal,
  reduceTaskExitCode,
  renderExitSummary,
  signalDescription,
  signalName,
  signalReason,
  signaled,
  sortGroupKeys,
  taskErrorLines,
  worstExitCode,
} from "../../src/exit-status/index.js";
import type { StepPolicyFacts, StepVerdict, TaskGroups, TaskOutcome, TaskResult, TaskStatusEntry } from "../../src/exit-status/index.js";

const NONE: StepPolicyFacts = { cancelled: false, timedOut: false };
const CANCELLED: StepPolicyFacts = { cancelled: true, timedOut: false };
const TIMED_OUT: StepPolicyFacts = { cancelled: false, timedOut: true };

function task(rank: number, outcome: TaskOutcome, opts: { node?: string; killed?: boolean } = {}): TaskResult {
  return { rank, node: opts.node ?? "node-1", outcome, killedByRuntime: opts.killed ?? false };
}

/** The compact picture the notification carries, built the way the supervisor builds it. */
function picture(tasks: readonly TaskResult[]): TaskGroups {
  return groupTasks(tasks.map((t) => ({ rank: t.rank, node: t.node, key: outcomeKey(t.outcome), killedByRuntime: t.killedByRuntime })));
}

/** What a person sees for a step: the verdict in `show` terms, `muster run`'s exit status and its stderr lines. */
function seen(tasks: readonly TaskResult[], facts: StepPolicyFacts = NONE, launchErrors?: ReadonlyMap<number, string>) {
  const v = decideStep(tasks, facts);
  return {
    state: v.state,
    reason: v.reason,
    exitCode: formatExitCode(v.exitCode),
    failedNodes: v.failedNodes,
    runExitStatus: v.runExitStatus,
    lines: taskErrorLines(picture(tasks), launchErrors),
  };
}

/** Every outcome the codec can hold (launch failures with an OS text). */
function allOutcomes(): TaskOutcome[] {
  const out: TaskOutcome[] = [];
  for (let code = 0; code <= 255; code++) out.push(exited(code));
  for (let sig = 1; sig <= MAX_SIGNAL; sig++) out.push(signaled(sig, false), signaled(sig, true));
  out.push({ kind: "launch_failed", code: 126, error: "Permission denied" });
  out.push({ kind: "launch_failed", code: 127, error: "No such file or directory" });
  out.push({ kind: "node_lost" });
  return out;
}

describe("step verdicts: the issue's vectors", () => {
  it("tasks exiting 0,1,2,3: FAILED, NonZeroExitCode, 3:0, exit 3, one line per failed task", () => {
    const tasks = [0, 1, 2, 3].map((code) => task(code, exited(code)));
    expect(seen(tasks)).toEqual({
      state: "FAILED",
      reason: "NonZeroExitCode",
      exitCode: "3:0",
      failedNodes: [],
      runExitStatus: 3,
      lines: [
        "node-1: task 1: Exited with exit code 1",
        "node-1: task 2: Exited with exit code 2",
        "node-1: task 3: Exited with exit code 3",
      ],
    });
  });

  it("task 2 exits 1, task 3 segfaults: 0:11, RaisedSignal:11(Segmentation_fault), exit 139", () => {
    const tasks = [task(0, exited(0)), task(1, exited(0)), task(2, exited(1)), task(3, signaled(11))];
    expect(seen(tasks)).toEqual({
      state: "FAILED",
      reason: "RaisedSignal:11(Segmentation_fault)",
      exitCode: "0:11",
      failedNodes: [],
      runExitStatus: 139,
      lines: ["node-1: task 2: Exited with exit code 1", "node-1: task 3: Segmentation fault"],
    });
  });

  it("a segfault with a core dump says so in the line, and nothing else changes", () => {
    const tasks = [task(0, exited(0)), task(1, exited(0)), task(2, exited(1)), task(3, signaled(11, true))];
    const s = seen(tasks);
    expect(s.lines).toEqual(["node-1: task 2: Exited with exit code 1", "node-1: task 3: Segmentation fault (core dumped)"]);
    expect([s.state, s.reason, s.exitCode, s.runExitStatus]).toEqual(["FAILED", "RaisedSignal:11(Segmentation_fault)", "0:11", 139]);
  });

  it("one task SIGTERM, one SIGKILL: the higher signal number wins, 0:15, exit 143", () => {
    const s = seen([task(0, signaled(15)), task(1, signaled(9))]);
    expect([s.state, s.reason, s.exitCode, s.runExitStatus]).toEqual(["FAILED", "RaisedSignal:15(Terminated)", "0:15", 143]);
    expect(s.lines).toEqual(["node-1: task 0: Terminated", "node-1: task 1: Killed"]);
  });

  it("kill-on-bad-exit: one exits 7, three SIGTERM'd by muster: FAILED, 7:0, exit 7", () => {
    const tasks = [task(0, exited(7)), ...[1, 2, 3].map((r) => task(r, signaled(15), { killed: true }))];
    expect(seen(tasks)).toEqual({
      state: "FAILED",
      reason: "NonZeroExitCode",
      exitCode: "7:0",
      failedNodes: [],
      runExitStatus: 7,
      lines: ["node-1: task 0: Exited with exit code 7", "node-1: tasks 1-3: Terminated (stopped by muster)"],
    });
  });

  it("a cancelled step whose tasks were all SIGTERM'd by muster: CANCELLED, 0:15", () => {
    const tasks = [0, 1, 2, 3].map((r) => task(r, signaled(15), { killed: true }));
    const s = seen(tasks, CANCELLED);
    expect([s.state, s.reason, s.exitCode, s.runExitStatus]).toEqual(["CANCELLED", "None", "0:15", 143]);
    expect(s.lines).toEqual(["node-1: tasks 0-3: Terminated (stopped by muster)"]);
  });

  it("a lost node: NODE_FAIL, NodeDown, FailedNode, exit at least 1", () => {
    const tasks = [
      task(0, exited(0), { node: "node-1" }),
      task(1, exited(0), { node: "node-2" }),
      task(2, { kind: "node_lost" }, { node: "node-3" }),
      task(3, exited(0), { node: "node-4" }),
    ];
    expect(seen(tasks)).toEqual({
      state: "NODE_FAIL",
      reason: "NodeDown",
      exitCode: "0:0",
      failedNodes: ["node-3"],
      runExitStatus: 1,
      lines: ["node-3: task 2: Node lost"],
    });
  });

  it("a launch failure (command not found): FAILED, JobLaunchFailure, 127:0, exit 127, with the OS text", () => {
    const tasks = [task(0, { kind: "launch_failed", code: 127, error: "No such file or directory" })];
    const s = seen(tasks, NONE, new Map([[0, "No such file or directory"]]));
    expect(s).toEqual({
      state: "FAILED",
      reason: "JobLaunchFailure",
      exitCode: "127:0",
      failedNodes: [],
      runExitStatus: 127,
      lines: ["node-1: task 0: Launch failed with exit code 127: No such file or directory"],
    });
  });

  it("the time limit: every task SIGTERM'd by muster: TIMEOUT, TimeLimit, 0:15, exit 143", () => {
    const tasks = [0, 1, 2, 3].map((r) => task(r, signaled(15), { killed: true }));
    const s = seen(tasks, TIMED_OUT);
    expect([s.state, s.reason, s.exitCode, s.runExitStatus]).toEqual(["TIMEOUT", "TimeLimit", "0:15", 143]);
    expect(s.runExitStatus).toBeGreaterThanOrEqual(1);
  });

  it("the time limit after some tasks finished cleanly: TIMEOUT, 0:0, exit raised to 1", () => {
    const tasks = [task(0, exited(0)), task(1, exited(0)), task(2, signaled(15), { killed: true }), task(3, signaled(9), { killed: true })];
    const s = seen(tasks, TIMED_OUT);
    expect([s.state, s.reason, s.exitCode, s.runExitStatus]).toEqual(["TIMEOUT", "TimeLimit", "0:0", 1]);
    expect(s.lines).toEqual(["node-1: task 2: Terminated (stopped by muster)", "node-1: task 3: Killed (stopped by muster)"]);
  });

  it("8 tasks on 2 nodes, node-2's all exit 1: exactly one line", () => {
    const tasks = [
      ...[0, 1, 2, 3].map((r) => task(r, exited(0), { node: "node-1" })),
      ...[4, 5, 6, 7].map((r) => task(r, exited(1), { node: "node-2" })),
    ];
    expect(seen(tasks).lines).toEqual(["node-2: tasks 4-7: Exited with exit code 1"]);
  });

  it("all tasks succeed: COMPLETED, 0:0, exit 0, no lines", () => {
    expect(seen([0, 1, 2].map((r) => task(r, exited(0))))).toEqual({
      state: "COMPLETED",
      reason: "None",
      exitCode: "0:0",
      failedNodes: [],
      runExitStatus: 0,
      lines: [],
    });
  });
});

describe("job verdicts", () => {
  const verdict = (code: number): StepVerdict => decideStep([task(0, exited(code))], NONE);

  it("a batch job takes the batch step's ExitCode; DerivedExitCode is the worst numbered step", () => {
    const steps = [verdict(0), verdict(7), verdict(3)];
    const job = decideJob({ batch: verdict(0), steps });
    expect(job.state).toBe("COMPLETED");
    expect(formatExitCode(job.exitCode)).toBe("0:0");
    expect(formatExitCode(job.derivedExitCode)).toBe("7:0");
    expect(formatExitCode(decideJob({ batch: verdict(0), steps: [...steps].reverse() }).derivedExitCode)).toBe("7:0");
  });

  it("a batch job with no steps has DerivedExitCode 0:0", () => {
    expect(formatExitCode(decideJob({ batch: verdict(0), steps: [] }).derivedExitCode)).toBe("0:0");
    const failed = decideJob({ batch: verdict(6), steps: [] });
    expect([failed.state, failed.reason, formatExitCode(failed.exitCode), formatExitCode(failed.derivedExitCode)]).toEqual([
      "FAILED",
      "NonZeroExitCode",
      "6:0",
      "0:0",
    ]);
  });

  it("a run job takes its one step's verdict", () => {
    const step = decideStep([task(0, exited(0)), task(1, signaled(11, true))], NONE);
    const job = decideJob({ steps: [step] });
    expect(job).toEqual({
      state: "FAILED",
      reason: "RaisedSignal:11(Segmentation_fault)",
      exitCode: { code: 0, signal: 11 },
      derivedExitCode: { code: 0, signal: 11 },
      failedNodes: [],
    });
  });

  it("a job with neither a batch step nor a step cannot be decided", () => {
    expect(() => decideJob({ steps: [] })).toThrow(new RangeError("a job without a batch step needs one step to decide its end"));
  });
});

describe("severity order", () => {
  it("any signal beats any exit code", () => {
    expect(compareSeverity({ code: 0, signal: 1 }, { code: 255, signal: 0 })).toBeGreaterThan(0);
    expect(worstExitCode([{ code: 255, signal: 0 }, { code: 0, signal: 1 }])).toEqual({ code: 0, signal: 1 });
  });

  it("the higher signal wins, and the higher code wins", () => {
    expect(compareSeverity({ code: 0, signal: 15 }, { code: 0, signal: 9 })).toBeGreaterThan(0);
    expect(compareSeverity({ code: 3, signal: 0 }, { code: 2, signal: 0 })).toBeGreaterThan(0);
    expect(compareSeverity({ code: 1, signal: 0 }, EXIT_OK)).toBeGreaterThan(0);
    expect(compareSeverity(EXIT_OK, EXIT_OK)).toBe(0);
    expect(worstExitCode([{ code: 0, signal: 9 }, { code: 0, signal: 15 }, { code: 0, signal: 11 }])).toEqual({ code: 0, signal: 15 });
    expect(worstExitCode([{ code: 2, signal: 0 }, { code: 7, signal: 0 }, { code: 3, signal: 0 }])).toEqual({ code: 7, signal: 0 });
    expect(worstExitCode([])).toEqual(EXIT_OK);
  });

  it("leaves out tasks killed by the runtime unless every task was", () => {
    const own = [task(0, exited(1)), task(1, signaled(9), { killed: true })];
    expect(reduceTaskExitCode(own)).toEqual({ code: 1, signal: 0 });
    const allKilled = [task(0, signaled(9), { killed: true }), task(1, signaled(15), { killed: true })];
    expect(reduceTaskExitCode(allKilled)).toEqual({ code: 0, signal: 15 });
  });
});

describe("signals", () => {
  /** glibc's strsignal() texts, copied from DESIGN.md independently of the module. */
  const GLIBC: Record<number, string> = {
    1: "Hangup",
    2: "Interrupt",
    3: "Quit",
    4: "Illegal instruction",
    5: "Trace/breakpoint trap",
    6: "Aborted",
    7: "Bus error",
    8: "Floating point exception",
    9: "Killed",
    10: "User defined signal 1",
    11: "Segmentation fault",
    12: "User defined signal 2",
    13: "Broken pipe",
    14: "Alarm clock",
    15: "Terminated",
    16: "Stack fault",
    17: "Child exited",
    18: "Continued",
    19: "Stopped (signal)",
    20: "Stopped",
    21: "Stopped (tty input)",
    22: "Stopped (tty output)",
    23: "Urgent I/O condition",
    24: "CPU time limit exceeded",
    25: "File size limit exceeded",
    26: "Virtual timer expired",
    27: "Profiling timer expired",
    28: "Window changed",
    29: "I/O possible",
    30: "Power failure",
    31: "Bad system call",
  };

  it("describes signals 1..31 with glibc's text", () => {
    for (let sig = 1; sig <= 31; sig++) expect(signalDescription(sig), `signal ${sig}`).toBe(GLIBC[sig]);
  });

  it("describes real-time signals as `Real-time signal N`, counted from 34", () => {
    for (let n = 0; 34 + n <= 64; n++) expect(signalDescription(34 + n)).toBe(`Real-time signal ${n}`);
    expect(signalName(34)).toBe("SIGRTMIN");
    expect(signalName(36)).toBe("SIGRTMIN+2");
  });

  it("puts underscores for spaces in a Reason", () => {
    expect(signalReason(11)).toBe("RaisedSignal:11(Segmentation_fault)");
    expect(signalReason(15)).toBe("RaisedSignal:15(Terminated)");
    expect(signalReason(19)).toBe("RaisedSignal:19(Stopped_(signal))");
    expect(signalReason(36)).toBe("RaisedSignal:36(Real-time_signal_2)");
    for (let sig = 1; sig <= 64; sig++) expect(signalReason(sig)).not.toContain(" ");
  });

  it.each([
    ["TERM", 15],
    ["SIGTERM", 15],
    ["term", 15],
    ["15", 15],
    ["SIGSEGV", 11],
    ["kill", 9],
    ["RTMIN+2", 36],
    ["SIGRTMIN", 34],
    ["RTMAX", 64],
  ] as const)("parses %j as %i", (input, signal) => {
    expect(parseSignal(input)).toBe(signal);
  });

  it.each(["FOO", "0", "65", "", "SIG", "-15", "RTMIN+31"])("rejects %j", (input) => {
    expect(parseSignal(input)).toBeUndefined();
  });
});

describe("wait status and Node exit decoding", () => {
  it("decodes exits, signals and core dumps", () => {
    for (const n of [0, 1, 3, 127, 255]) expect(decodeWaitStatus(0x0100 * n)).toEqual({ kind: "exited", code: n });
    expect(decodeWaitStatus(11)).toEqual({ kind: "signaled", signal: 11, coreDumped: false });
    expect(decodeWaitStatus(0x8b)).toEqual({ kind: "signaled", signal: 11, coreDumped: true });
  });

  it("refuses a stopped status", () => {
    expect(() => decodeWaitStatus(0x137f)).toThrow(new RangeError("wait status 4991 is a stopped process, not a termination"));
  });

  it("round-trips every exit code and every signal with and without core", () => {
    for (let code = 0; code <= 255; code++) expect(decodeWaitStatus(encodeWaitStatus(exited(code)))).toEqual(exited(code));
    for (let sig = 1; sig <= 64; sig++) {
      for (const core of [false, true]) expect(decodeWaitStatus(encodeWaitStatus(signaled(sig, core)))).toEqual(signaled(sig, core));
    }
  });

  it("has no wait status for outcomes the supervisor decides", () => {
    expect(() => encodeWaitStatus({ kind: "node_lost" })).toThrow(new RangeError("node_lost has no wait status"));
  });

  it("decodes what child_process reports", () => {
    expect(decodeNodeExit(null, "SIGSEGV")).toEqual({ kind: "signaled", signal: 11, coreDumped: false });
    expect(decodeNodeExit(null, "SIGSEGV", true)).toEqual({ kind: "signaled", signal: 11, coreDumped: true });
    expect(decodeNodeExit(3, null)).toEqual({ kind: "exited", code: 3 });
    expect(() => decodeNodeExit(null, null)).toThrow(new RangeError("child_process reported neither an exit code nor a signal"));
    expect(() => decodeNodeExit(null, "SIGFOO")).toThrow(new RangeError("unknown signal name from child_process: SIGFOO"));
  });

  it("checks the ranges of exit codes and signals", () => {
    expect(() => exited(256)).toThrow(new RangeError("exit code out of range 0..255: 256"));
    expect(() => signaled(0)).toThrow(new RangeError("signal out of range 1..64: 0"));
    expect(isBadOutcome(exited(0))).toBe(false);
    expect(isBadOutcome(exited(1))).toBe(true);
    expect(isBadOutcome({ kind: "node_lost" })).toBe(true);
  });
});

describe("ExitCode display", () => {
  it("never has both halves non-zero, and parses back", () => {
    for (const outcome of allOutcomes()) {
      const ec = outcomeExitCode(outcome);
      const text = formatExitCode(ec);
      expect(ec.code === 0 || ec.signal === 0, `${outcomeKey(outcome)} → ${text}`).toBe(true);
      expect(parseExitCode(text)).toEqual(ec);
    }
    expect(formatExitCode(outcomeExitCode(signaled(9)))).toBe("0:9");
    expect(formatExitCode(outcomeExitCode(exited(3)))).toBe("3:0");
    expect(formatExitCode(outcomeExitCode(exited(0)))).toBe("0:0");
  });

  it("rejects text that is not code:signal", () => {
    expect(() => parseExitCode("137")).toThrow(new RangeError('bad ExitCode "137": expected code:signal with at most one half non-zero'));
    expect(() => parseExitCode("1:9")).toThrow(new RangeError('bad ExitCode "1:9": expected code:signal with at most one half non-zero'));
    expect(() => parseExitCode("01:0")).toThrow(RangeError);
  });
});

describe("group keys", () => {
  it("round-trips every outcome through its key", () => {
    for (const outcome of allOutcomes()) {
      const key = outcomeKey(outcome);
      const parsed = parseGroupKey(key);
      expect("outcome" in parsed).toBe(true);
      if (!("outcome" in parsed)) continue;
      // A launch failure's OS text travels beside the key, not in it.
      const expected = outcome.kind === "launch_failed" ? { ...outcome, error: "" } : outcome;
      expect(parsed.outcome).toEqual(expected);
      expect(outcomeKey(parsed.outcome)).toBe(key);
    }
    expect(outcomeKey(signaled(11, true))).toBe("signaled:11:core");
    expect(parseGroupKey("running")).toEqual({ live: "running" });
  });

  it("sorts live states first, then exits, launch failures, signals and node loss", () => {
    const order = [
      "pending",
      "launching",
      "running",
      "stopping",
      "exited:0",
      "exited:1",
      "exited:9",
      "exited:10",
      "exited:255",
      "launch_failed:126",
      "launch_failed:127",
      "signaled:9",
      "signaled:11",
      "signaled:11:core",
      "signaled:15",
      "node_lost",
    ];
    expect(sortGroupKeys([...order].reverse())).toEqual(order);
    expect(sortGroupKeys(["exited:10", "node_lost", "running", "exited:9", "signaled:11"])).toEqual([
      "running",
      "exited:9",
      "exited:10",
      "signaled:11",
      "node_lost",
    ]);
  });

  it.each(["bogus", "", "exited:256", "exited:1:core", "signaled:0", "signaled:65", "launch_failed:1", "node_lost:1", "Running"])(
    "rejects the unknown key %j",
    (key) => {
      expect(() => parseGroupKey(key)).toThrow(new RangeError(`unknown task group key "${key}"`));
      expect(() => sortGroupKeys(["exited:0", key])).toThrow(RangeError);
    },
  );

  it("describes keys for the summary table", () => {
    expect(describeGroupKey("exited:1")).toBe("exited 1");
    expect(describeGroupKey("signaled:11:core")).toBe("signaled 11 (Segmentation fault, core dumped)");
    expect(describeGroupKey("launch_failed:127")).toBe("launch failed 127");
    expect(describeGroupKey("node_lost")).toBe("node lost");
    expect(describeGroupKey("running")).toBe("running");
  });
});

describe("the first-failure notification and its summary", () => {
  it("keeps a 1,000,000-task step's notification under 64 KiB", () => {
    const ntasks = 1_000_000;
    const nodes = 100;
    const perNode = ntasks / nodes;
    const bad = new Map<number, string>([
      [17, "exited:1"],
      [500_000, "signaled:11:core"],
      [999_998, "signaled:15"],
    ]);
    function* entries(): Generator<TaskStatusEntry> {
      for (let rank = 0; rank < ntasks; rank++) {
        yield {
          rank,
          node: `node-${Math.floor(rank / perNode) + 1}`,
          key: bad.get(rank) ?? "exited:0",
          killedByRuntime: rank === 999_998,
        };
      }
    }
    const t0 = performance.now();
    const pic = groupTasks(entries());
    const grouped = performance.now() - t0;
    const notification = { job: "4242", step: "0", ...pic };
    const bytes = Buffer.byteLength(JSON.stringify(notification), "utf8");
    console.log(`exit-status: notification for 1,000,000 tasks on 100 nodes is ${bytes} bytes (groupTasks ${grouped.toFixed(1)} ms)`);

    expect(bytes).toBeLessThan(65536);
    expect(pic.groups).toEqual({
      "exited:0": "0-16,18-499999,500001-999997,999999",
      "exited:1": "17",
      "signaled:11:core": "500000",
      "signaled:15": "999998",
    });
    expect(Object.keys(pic.groups)).toEqual(["exited:0", "exited:1", "signaled:11:core", "signaled:15"]);
    expect(Object.keys(pic.nodes)).toHaveLength(100);
    expect(Object.keys(pic.nodes).slice(0, 3)).toEqual(["node-1", "node-2", "node-3"]);
    expect(pic.nodes["node-1"]).toBe("0-9999");
    expect(pic.nodes["node-100"]).toBe("990000-999999");
    expect(pic.killedByRuntime).toBe("999998");
    expect(taskErrorLines(pic)).toEqual([
      "node-1: task 17: Exited with exit code 1",
      "node-51: task 500000: Segmentation fault (core dumped)",
      "node-100: task 999998: Terminated (stopped by muster)",
    ]);
  });

  it("renders the first-failure picture from DESIGN.md as a Task Exit Code Summary", () => {
    const pic: TaskGroups = {
      groups: { "exited:0": "0-2,4-9", "exited:1": "3", running: "10-15" },
      nodes: { "node-1": "0-7", "node-2": "8-15" },
      killedByRuntime: "",
    };
    const lines = renderExitSummary({ stepId: "42.0", picture: pic, trigger: { rank: 3, node: "node-1", outcome: exited(1) } });
    expect(lines).toEqual([
      "Task Exit Code Summary for StepId=42.0 (first failure: task 3 on node-1: Exited with exit code 1)",
      "  exited 0  tasks 0-2,4-9",
      "  exited 1  task 3",
      "  running   tasks 10-15",
    ]);
  });

  it("prints groups in groupTasks' order (live states first) when the picture comes from groupTasks", () => {
    const entries: TaskStatusEntry[] = Array.from({ length: 16 }, (_, rank) => ({
      rank,
      node: rank < 8 ? "node-1" : "node-2",
      key: rank === 3 ? "exited:1" : rank >= 10 ? "running" : "exited:0",
      killedByRuntime: false,
    }));
    const pic = groupTasks(entries);
    expect(pic).toEqual({
      groups: { running: "10-15", "exited:0": "0-2,4-9", "exited:1": "3" },
      nodes: { "node-1": "0-7", "node-2": "8-15" },
      killedByRuntime: "",
    });
    expect(renderExitSummary({ stepId: "42.0", picture: pic, trigger: { rank: 3, node: "node-1", outcome: exited(1) } })).toEqual([
      "Task Exit Code Summary for StepId=42.0 (first failure: task 3 on node-1: Exited with exit code 1)",
      "  running   tasks 10-15",
      "  exited 0  tasks 0-2,4-9",
      "  exited 1  task 3",
    ]);
  });

  it("renders the final summary with the verdict and the tasks muster stopped", () => {
    const tasks = [task(0, exited(7)), ...[1, 2, 3].map((r) => task(r, signaled(15), { killed: true }))];
    const v = decideStep(tasks, NONE);
    const lines = renderExitSummary({
      stepId: "42.0",
      picture: picture(tasks),
      final: { state: v.state, reason: v.reason, exitCode: formatExitCode(v.exitCode) },
    });
    expect(lines).toEqual([
      "Task Exit Code Summary for StepId=42.0: FAILED, ExitCode=7:0, Reason=NonZeroExitCode",
      "  exited 7                  task 0",
      "  signaled 15 (Terminated)  tasks 1-3 (stopped by muster: 1-3)",
    ]);
  });
});

describe("decisions beyond the listed vectors", () => {
  it("a cancelled step whose unkilled tasks succeeded still makes `muster run` exit non-zero", () => {
    const tasks = [task(0, exited(0)), task(1, signaled(15), { killed: true })];
    const v = decideStep(tasks, CANCELLED);
    expect(v.state).toBe("CANCELLED");
    expect(formatExitCode(v.exitCode)).toBe("0:0");
    expect(v.runExitStatus).toBe(1);
  });

  it("every task stopped by muster without a cancel or time limit is FAILED by the signal, not COMPLETED", () => {
    const v = decideStep([task(0, signaled(9), { killed: true }), task(1, signaled(9), { killed: true })], NONE);
    expect([v.state, v.reason, formatExitCode(v.exitCode), v.runExitStatus]).toEqual(["FAILED", "RaisedSignal:9(Killed)", "0:9", 137]);
  });

  it("a timed-out step where a task failed on its own before the limit is FAILED with that task's code", () => {
    const v = decideStep([task(0, exited(4)), task(1, signaled(15), { killed: true })], TIMED_OUT);
    expect([v.state, v.reason, formatExitCode(v.exitCode)]).toEqual(["FAILED", "NonZeroExitCode", "4:0"]);
  });

  it("failed nodes sort in natural order", () => {
    const v = decideStep([task(0, { kind: "node_lost" }, { node: "node-10" }), task(1, { kind: "node_lost" }, { node: "node-2" })], NONE);
    expect(v.failedNodes).toEqual(["node-2", "node-10"]);
  });

  it("group keys with leading zeros are rejected", () => {
    expect(() => parseGroupKey("exited:01")).toThrow('unknown task group key "exited:01"');
  });
});

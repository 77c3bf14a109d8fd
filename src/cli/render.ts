/** How the CLI prints notifications, summaries and job views; every ExitCode text comes from the exit-status module. */
import { renderExitSummary, taskErrorLines } from "../exit-status/index.js";
import { decodeTaskPicture, type JobView, type StepExitCodesMessage } from "../protocol/index.js";

/** The Task Exit Code Summary of a first-failure notification or final summary (any picture form), as stderr lines. */
export function summaryLines(msg: StepExitCodesMessage): string[] {
  const picture = decodeTaskPicture(msg);
  return renderExitSummary({
    stepId: `${msg.job}.${msg.step}`,
    picture,
    trigger: msg.trigger,
    final: msg.type === "step.summary" ? { state: msg.state, reason: msg.reason, exitCode: msg.exitCode } : undefined,
  });
}

/** The per-task error lines of a final summary (`node-2: tasks 4-7: Exited with exit code 1`). */
export function errorLines(msg: StepExitCodesMessage, launchErrors?: ReadonlyMap<number, string>): string[] {
  return taskErrorLines(decodeTaskPicture(msg), launchErrors);
}

/** A time as every CLI surface prints it: UTC, to the second (`2026-11-22T22:43:36`), or `Unknown`. */
export function formatTime(ms: number | undefined): string {
  return ms === undefined ? "Unknown" : new Date(ms).toISOString().replace(/\.\d+Z$/, "");
}

/** Slurm's duration form: `HH:MM:SS`, or `D-HH:MM:SS` from one day on. */
export function formatElapsed(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(total / 86400);
  const h = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const p = (n: number) => String(n).padStart(2, "0");
  if (d > 0) return `${d}-${p(h)}:${p(m)}:${p(s)}`;
  return `${p(h)}:${p(m)}:${p(s)}`;
}

/** A time limit as scontrol prints it: `00:01:00`, `1-00:00:00`, or `UNLIMITED`. */
export function formatTimeLimit(seconds: number | undefined): string {
  return seconds === undefined ? "UNLIMITED" : formatElapsed(Math.ceil(seconds) * 1000);
}

type StepOfView = JobView["steps"][number];

/** `muster show job` text, in scontrol's key=value style, then one block per step and a task table. */
export function renderJob(view: JobView): string {
  const lines = [
    `JobId=${view.jobId} JobName=${view.name} UserId=${view.user} Kind=${view.kind}`,
    `   JobState=${view.state} Reason=${view.reason} ExitCode=${view.exitCode} DerivedExitCode=${view.derivedExitCode}` +
      (view.failedNodes.length ? ` FailedNode=${view.failedNodes.join(",")}` : ""),
    `   RunTime=${formatElapsed((view.runTimeSeconds ?? 0) * 1000)} TimeLimit=${formatTimeLimit(view.timeLimitSeconds)}`,
    `   SubmitTime=${formatTime(view.submittedAt)} StartTime=${formatTime(view.startedAt)} EndTime=${formatTime(view.endedAt)}`,
    `   NodeList=${view.nodes.length ? view.nodes.join(",") : "(null)"}`,
    `   NumNodes=${view.nodes.length || "Unknown"} NumTasks=${view.ntasks}`,
  ];
  if (view.command !== undefined) lines.push(`   Command=${view.command}`);
  if (view.workDir !== undefined) lines.push(`   WorkDir=${view.workDir}`);
  if (view.stdErr !== undefined) lines.push(`   StdErr=${view.stdErr}`);
  if (view.stdOut !== undefined) lines.push(`   StdOut=${view.stdOut}`);
  for (const s of view.steps) lines.push(...renderStep(view.jobId, s));
  return lines.join("\n");
}

/** One step's block of `muster show job` (and all of `muster show step`): key=value lines, then its tasks. */
export function renderStep(jobId: string, s: StepOfView): string[] {
  const nodes = Object.keys(s.nodes);
  const lines = [
    `StepId=${jobId}.${s.stepId} State=${s.state} Reason=${s.reason} ExitCode=${s.exitCode} NumTasks=${s.ntasks}` +
      (s.failedNodes.length ? ` FailedNode=${s.failedNodes.join(",")}` : ""),
    `   ${s.name === undefined ? "" : `Name=${s.name} `}StartTime=${formatTime(s.launchedAt)} EndTime=${formatTime(s.endedAt)} TimeLimit=${formatTimeLimit(s.timeLimitSeconds)}`,
    `   NodeList=${nodes.length ? nodes.join(",") : "(null)"}`,
    `   Nodes=${Object.entries(s.nodes).map(([n, r]) => `${n}[${r}]`).join(",")}`,
  ];
  if (s.command !== undefined) lines.push(`   Command=${s.command}`);
  if (s.firstFailure) lines.push(`   FirstFailure=task ${s.firstFailure.rank} on ${s.firstFailure.node}`);
  const lost = s.tasks.filter((t) => t.outputLostBytes);
  if (lost.length) lines.push(`   OutputLostBytes=${lost.map((t) => `${t.rank}:${t.outputLostBytes}`).join(",")}`);
  if (s.tasks.length) {
    const rows = s.tasks.map((t) => [String(t.rank), t.node, t.state, t.exitCode ?? "-", t.pid === undefined ? "-" : String(t.pid), t.killedByRuntime ? "yes" : "no"]);
    const head = ["RANK", "NODE", "STATE", "EXITCODE", "PID", "STOPPED_BY_MUSTER"];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const fmt = (r: string[]) => "   " + r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
    lines.push(fmt(head), ...rows.map(fmt));
  } else if (s.tasksOmitted) {
    lines.push(...groupLines(s, "   "));
  }
  return lines;
}

/** A step's ranks by group, one `key: ranks` line each (`key: N tasks` for groups whose ranks a huge step's view leaves out). */
export function groupLines(step: JobView["steps"][number], indent: string): string[] {
  const picture = decodeTaskPicture(step);
  const lines = Object.entries(picture.groups).map(([k, r]) => `${indent}${k}: ${r}`);
  for (const [k, n] of Object.entries(picture.omitted?.groups ?? {})) lines.push(`${indent}${k}: ${n} ${n === 1 ? "task" : "tasks"} (ranks not listed)`);
  return lines;
}

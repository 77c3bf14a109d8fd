/**
 * `muster batch` end to end: scripts written to a temp dir run as the `batch` step of a job on a
 * real cluster (two agents of two slots), each `muster run` inside them adding step 0, 1, 2 …;
 * ExitCode comes from the script, DerivedExitCode from the steps; output goes to files.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, type Cluster, type CommandResult } from "../support/cluster.js";
import { waitFor } from "../support/wait.js";

let c: Cluster;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "muster-batch-"));
  c = await startCluster({ agents: 2, slots: 2 });
}, 60_000);

afterAll(async () => {
  await c?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Writes a shell script into the temp dir and returns its name (relative to the temp dir). */
function script(name: string, body: string): string {
  writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return name;
}

/** A script that runs one 2-task step per exit code, then exits with `exit`. */
function stepsScript(name: string, codes: readonly number[], exit: number): string {
  const steps = codes.map((code) => `muster run -n 2 -- sh -c 'exit ${code}'; echo "step exited $?"`);
  return script(name, [`echo "script $MUSTER_JOB_ID starts"`, ...steps, `echo "script ends"`, `exit ${exit}`].join("\n"));
}

/** Runs `muster batch` in the temp dir to its end. */
async function batch(args: readonly string[], timeoutMs = 60_000): Promise<CommandResult> {
  const r = c.start(["batch", ...args], { cwd: dir });
  const t = setTimeout(() => r.proc.kill("SIGKILL"), timeoutMs);
  try {
    return await r.done;
  } finally {
    clearTimeout(t);
  }
}

/** The job id `muster batch` prints. */
function jobIdOf(stdout: string): string {
  const m = /^Submitted batch job (\S+)$/m.exec(stdout);
  if (!m) throw new Error(`no job id in stdout:\n${stdout}`);
  return m[1]!;
}

/** `history -j JOB --parsable2 --noheader --format …`, as rows of cells. */
async function history(job: string, format = "JobID,State,ExitCode,DerivedExitCode"): Promise<string[][]> {
  const r = await c.muster(["history", "-j", job, "--parsable2", "--noheader", "--format", format]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout
    .trimEnd()
    .split("\n")
    .map((l) => l.split("|"));
}

/** The rows with the job id replaced by `J`, to compare two jobs. */
const generic = (rows: string[][], job: string) => rows.map(([id, ...rest]) => [id!.replace(new RegExp(`^${job}(?=\\.|$)`), "J"), ...rest]);

describe("muster batch", () => {
  it("steps exiting 0, 7, 3 and a script exiting 0: COMPLETED 0:0, DerivedExitCode 7:0, output in muster-<job>.out", async () => {
    const r = await batch(["-n", "2", "--wait", stepsScript("steps-073.sh", [0, 7, 3], 0)]);
    expect(r.code, r.stderr).toBe(0);
    const job = jobIdOf(r.stdout);
    const view = await c.showJob(job);
    expect([view.kind, view.state, view.reason, view.exitCode, view.derivedExitCode]).toEqual(["batch", "COMPLETED", "None", "0:0", "7:0"]);
    expect(await history(job)).toEqual([
      [job, "COMPLETED", "0:0", "7:0"],
      [`${job}.batch`, "COMPLETED", "0:0", ""],
      [`${job}.0`, "COMPLETED", "0:0", ""],
      [`${job}.1`, "FAILED", "7:0", ""],
      [`${job}.2`, "FAILED", "3:0", ""],
    ]);
    // By default the script's stdout and stderr go to muster-<job>.out in the submit directory,
    // with the steps' own lines (what `muster run` prints on stderr) among them.
    const out = readFileSync(join(dir, `muster-${job}.out`), "utf8");
    expect(out).toContain(`script ${job} starts\n`);
    expect(out).toContain("script ends\n");
    expect(out.match(/^step exited \d+$/gm)).toEqual(["step exited 0", "step exited 7", "step exited 3"]);
    expect(out).toContain(`Task Exit Code Summary for StepId=${job}.1 `);
    expect(out).toMatch(/muster: error: node-\d+: tasks? [\d,-]+: Exited with exit code 7\n/);
    expect(out).toMatch(/muster: error: node-\d+: tasks? [\d,-]+: Exited with exit code 3\n/);
    expect(out).not.toContain(`StepId=${job}.0 `);
  });

  it("the same steps reversed (3, 7, 0): DerivedExitCode is still 7:0; -o FILE with %j takes the output", async () => {
    const r = await batch(["-n", "2", "--wait", "-o", "out-%j.log", stepsScript("steps-370.sh", [3, 7, 0], 0)]);
    expect(r.code, r.stderr).toBe(0);
    const job = jobIdOf(r.stdout);
    const view = await c.showJob(job);
    expect([view.state, view.exitCode, view.derivedExitCode]).toEqual(["COMPLETED", "0:0", "7:0"]);
    expect(await history(job)).toEqual([
      [job, "COMPLETED", "0:0", "7:0"],
      [`${job}.batch`, "COMPLETED", "0:0", ""],
      [`${job}.0`, "FAILED", "3:0", ""],
      [`${job}.1`, "FAILED", "7:0", ""],
      [`${job}.2`, "COMPLETED", "0:0", ""],
    ]);
    const out = readFileSync(join(dir, `out-${job}.log`), "utf8");
    expect(out).toContain(`script ${job} starts\n`);
    expect(out.match(/^step exited \d+$/gm)).toEqual(["step exited 3", "step exited 7", "step exited 0"]);
    expect(out).toMatch(/muster: error: node-\d+: tasks? [\d,-]+: Exited with exit code 3\n/);
    expect(() => readFileSync(join(dir, `muster-${job}.out`))).toThrow();
  });

  it("a script with no steps exiting 6: FAILED, ExitCode 6:0, DerivedExitCode 0:0, and --wait exits 6", async () => {
    const r = await batch(["--wait", script("exit6.sh", 'echo "about to fail"; exit 6')]);
    expect(r.code, r.stderr).toBe(6);
    const job = jobIdOf(r.stdout);
    const view = await c.showJob(job);
    expect([view.state, view.reason, view.exitCode, view.derivedExitCode]).toEqual(["FAILED", "NonZeroExitCode", "6:0", "0:0"]);
    expect(await history(job)).toEqual([
      [job, "FAILED", "6:0", "0:0"],
      [`${job}.batch`, "FAILED", "6:0", ""],
    ]);
    expect(readFileSync(join(dir, `muster-${job}.out`), "utf8")).toBe("about to fail\n");
  });

  it("the supervisor SIGKILLed and restarted between two steps: the same records as without the restart", async () => {
    const body = (tag: string) =>
      [
        `muster run -n 2 -- sh -c 'exit 4'; echo "step 0 exited $?"`,
        `echo "${tag} between steps"`,
        "sleep 3",
        `muster run -n 2 -- sh -c 'exit 0'; echo "step 1 exited $?"`,
        "exit 0",
      ].join("\n");
    const format = "JobID,JobName,State,Reason,ExitCode,DerivedExitCode,NTasks,NodeList";

    // Without a restart.
    const plain = await batch(["-n", "2", "--wait", script("restart-plain.sh", body("plain"))]);
    expect(plain.code, plain.stderr).toBe(0);
    const plainJob = jobIdOf(plain.stdout);
    const expected = generic(await history(plainJob, format), plainJob);
    expect(expected.map((r) => r.slice(0, 6))).toEqual([
      ["J", "restart-plain.sh", "COMPLETED", "None", "0:0", "4:0"],
      ["J.batch", "batch", "COMPLETED", "None", "0:0", ""],
      // A step row is named by its executable, as sacct names it.
      ["J.0", "sh", "FAILED", "NonZeroExitCode", "4:0", ""],
      ["J.1", "sh", "COMPLETED", "None", "0:0", ""],
    ]);

    // With the supervisor SIGKILLed during the sleep and started again.
    const run = c.start(["batch", "-n", "2", "--wait", "-J", "restart-plain.sh", script("restart-kill.sh", body("kill"))], { cwd: dir });
    const job = await waitFor(() => /^Submitted batch job (\S+)$/m.exec(run.stdout())?.[1], { timeoutMs: 20_000, message: "job submitted" });
    const outFile = join(dir, `muster-${job}.out`);
    await waitFor(() => readFileSync(outFile, "utf8").includes("kill between steps"), { timeoutMs: 20_000, intervalMs: 20, message: "step 0 done" });
    const old = c.supervisor;
    const exited = new Promise((r) => old.once("exit", r));
    old.kill("SIGKILL");
    await exited;
    await c.startSupervisor();
    const r = await run.done;
    expect(r.code, `${r.stderr}\n${readFileSync(outFile, "utf8")}`).toBe(0);
    expect(generic(await history(job, format), job)).toEqual(expected);
    const out = readFileSync(outFile, "utf8");
    expect(out).toContain("step 0 exited 4\n");
    expect(out).toContain("step 1 exited 0\n");
    const view = await c.showJob(job);
    expect([view.state, view.exitCode, view.derivedExitCode, view.steps.length]).toEqual(["COMPLETED", "0:0", "4:0", 3]);
  });
});

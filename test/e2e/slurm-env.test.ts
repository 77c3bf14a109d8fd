/**
 * A Slurm user's script, end to end on a real cluster (node-1 and node-2 with two slots each, and
 * node-3 whose agent runs with MUSTER_SLURM_ENV=0): `#SBATCH` directives, a bare `muster run` in a
 * batch job, Slurm's task variables, `--export`, secrets kept from tasks and records, `-D`, `-w`,
 * `--wrap`, `--parsable`, and the answer for a Slurm flag muster lacks.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, type Cluster, type CommandResult } from "../support/cluster.js";

let c: Cluster;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "muster-slurm-"));
  c = await startCluster({ agents: 2, slots: 2 });
  await c.startAgent("node-3", { env: { MUSTER_SLURM_ENV: "0" } });
  await c.waitNodes(3);
}, 90_000);

afterAll(async () => {
  await c?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs a CLI command in the temp dir to its end. */
async function muster(args: readonly string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CommandResult> {
  const r = c.start(args, { cwd: dir, env });
  const t = setTimeout(() => r.proc.kill("SIGKILL"), timeoutMs);
  try {
    return await r.done;
  } finally {
    clearTimeout(t);
  }
}

/** Writes a script into the temp dir and returns its name. */
function script(name: string, lines: readonly string[]): string {
  writeFileSync(join(dir, name), lines.join("\n") + "\n", { mode: 0o755 });
  return name;
}

/** `KEY=VALUE` lines as a record. */
function envOf(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split("\n")
      .filter((l) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(l))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

const jobOf = (stdout: string) => /^Submitted batch job (\S+)$/m.exec(stdout)?.[1] ?? stdout.trim();

describe("a Slurm user's batch script", () => {
  it("#SBATCH -n 4 and a bare muster run: a 4-task step whose tasks see SLURM_PROCID/SLURM_NTASKS equal to MUSTER_*", async () => {
    const name = script("sbatch-n4.sh", [
      "#!/bin/sh",
      "#SBATCH -n 4",
      "#SBATCH -J slurm-style # a comment",
      "#SBATCH -o sbatch-n4-%j.out",
      'echo "batch ntasks=$SLURM_NTASKS nnodes=$SLURM_NNODES nodes=$SLURM_JOB_NODELIST tpn=$SLURM_TASKS_PER_NODE name=$SLURM_JOB_NAME step=${SLURM_STEP_ID-none}"',
      `muster run -- sh -c 'echo "task $SLURM_PROCID $MUSTER_TASK_ID $SLURM_NTASKS $MUSTER_NTASKS $SLURM_LOCALID $MUSTER_LOCALID $SLURM_NODEID $MUSTER_NODEID $SLURMD_NODENAME $MUSTER_NODE $SLURM_STEP_ID $SLURM_JOB_ID"'`,
      "echo step exited $?",
    ]);
    const r = await muster(["batch", "--wait", name]);
    expect(r.code, r.stderr).toBe(0);
    const job = jobOf(r.stdout);
    const out = readFileSync(join(dir, `sbatch-n4-${job}.out`), "utf8");
    expect(out).toContain("batch ntasks=4 nnodes=2 nodes=node-[1-2] tpn=2(x2) name=slurm-style step=none\n");
    expect(out).toContain("step exited 0\n");
    const tasks = out
      .split("\n")
      .filter((l) => l.startsWith("task "))
      .map((l) => l.split(" ").slice(1))
      .sort((a, b) => Number(a[0]) - Number(b[0]));
    expect(tasks.map((t) => t[0])).toEqual(["0", "1", "2", "3"]);
    for (const [procid, taskId, sNtasks, mNtasks, sLocal, mLocal, sNode, mNode, nodeName, mNodeName, stepId, jobId] of tasks) {
      expect([procid, sNtasks, sLocal, sNode, nodeName, stepId, jobId]).toEqual([taskId, mNtasks, mLocal, mNode, mNodeName, "0", job]);
      expect(sNtasks).toBe("4");
    }
    const view = await c.showJob(job!);
    expect(view.name).toBe("slurm-style");
    expect(view.steps.find((s: { stepId: string }) => s.stepId === "0").tasks).toHaveLength(4);
  });

  it("the command line wins over the directives; --wrap, --parsable and -D work as sbatch's", async () => {
    const name = script("cli-wins.sh", ["#!/bin/sh", "#SBATCH -n 4", "#MUSTER -J from-directive", "muster run -- true", 'echo "ntasks=$MUSTER_NTASKS"']);
    const r = await muster(["batch", "--wait", "-n", "1", "-o", "cli-wins.out", name]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(dir, "cli-wins.out"), "utf8")).toBe("ntasks=1\n");
    expect((await c.showJob(jobOf(r.stdout)!)).name).toBe("from-directive");

    const w = await muster(["batch", "--parsable", "--wait", "-n", "2", "-o", "wrap-%j.out", "--wrap", 'muster run -- sh -c "echo wrapped \\$SLURM_PROCID \\$SLURM_JOB_NAME"']);
    expect(w.code, w.stderr).toBe(0);
    expect(w.stdout).toMatch(/^\d+\n$/);
    const lines = readFileSync(join(dir, `wrap-${w.stdout.trim()}.out`), "utf8").trim().split("\n").sort();
    expect(lines).toEqual(["wrapped 0 wrap", "wrapped 1 wrap"]);

    // -D: the script and its steps run there, its output file is relative to it; SLURM_SUBMIT_DIR stays here.
    mkdirSync(join(dir, "batch-work"), { recursive: true });
    const d = await muster(["batch", "--wait", "-D", "batch-work", "-o", "d.out", "--wrap", 'echo "$PWD $SLURM_SUBMIT_DIR"; muster run -- pwd']);
    expect(d.code, d.stderr).toBe(0);
    expect(readFileSync(join(dir, "batch-work", "d.out"), "utf8")).toBe(`${join(dir, "batch-work")} ${dir}\n${join(dir, "batch-work")}\n`);
  });

  it("a directive muster lacks fails like the flag, naming the line, and nothing is submitted", async () => {
    const name = script("array.sh", ["#!/bin/sh", "#SBATCH -n 2", "#SBATCH --array=0-3", "true"]);
    const r = await muster(["batch", name]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^muster: error: batch: option --array is not supported: submit one job per index .* \(array\.sh line 3: #SBATCH\)\n$/);
  });
});

describe("Slurm's flags", () => {
  it("a flag muster lacks gets a one-line answer and exit 2", async () => {
    for (const [args, answer] of [
      [["run", "-c", "2", "--", "true"], "run: option -c is not supported: a task takes one slot"],
      [["run", "--mem=4G", "--", "true"], "run: option --mem is not supported: muster does not track memory"],
      [["run", "-p", "debug", "--", "true"], "run: option -p is not supported: muster has one pool of nodes"],
      [["batch", "--dependency=afterok:1", "x.sh"], "batch: option --dependency is not supported: "],
      [["batch", "--exclusive", "x.sh"], "batch: option --exclusive is not supported: "],
    ] as const) {
      const r = await muster(args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr.split("\n")).toHaveLength(2);
      expect(r.stderr).toContain(`muster: error: ${answer}`);
    }
  });

  it("-D runs the tasks in that directory; -w places them on the named node", async () => {
    mkdirSync(join(dir, "work"), { recursive: true });
    const d = await muster(["run", "-D", "work", "--", "pwd"]);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toBe(`${join(dir, "work")}\n`);

    const w = await muster(["run", "-n", "2", "-w", "node-2", "--", "sh", "-c", 'echo "$MUSTER_NODE $SLURMD_NODENAME $SLURM_JOB_NODELIST"']);
    expect(w.code, w.stderr).toBe(0);
    expect(w.stdout).toBe("node-2 node-2 node-2\nnode-2 node-2 node-2\n");

    const list = await muster(["run", "-n", "2", "-w", "node-[1-2]", "-l", "--", "sh", "-c", "echo $MUSTER_NODE"]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.split("\n").filter(Boolean).sort()).toEqual(["0: node-1", "1: node-2"]);

    const missing = await muster(["run", "-w", "node-9", "--", "true"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("muster: error: node node-9 named by --nodelist is not online (see muster nodes)\n");
  });
});

describe("the tasks' environment", () => {
  it("--export=NONE gives a task only muster's and Slurm's variables, PATH, and how to reach muster", async () => {
    const r = await muster(["run", "--export=NONE", "--", "/usr/bin/env"], { FOO: "from-submitter" });
    expect(r.code, r.stderr).toBe(0);
    const env = envOf(r.stdout);
    const others = Object.keys(env).filter((k) => !k.startsWith("MUSTER_") && !k.startsWith("SLURM_") && !k.startsWith("SLURMD_"));
    expect(others.sort()).toEqual(["NATS_URL", "PATH"]);
    expect(env.NATS_URL).toBe(c.nats.url);
    expect(env.MUSTER_PREFIX).toBe(c.prefix);
    expect(env.SLURM_PROCID).toBe("0");

    const some = await muster(["run", "--export=FOO,BAR=2", "--", "/usr/bin/env"], { FOO: "from-submitter", BAZ: "3" });
    expect(some.code, some.stderr).toBe(0);
    expect(envOf(some.stdout)).toMatchObject({ FOO: "from-submitter", BAR: "2" });
    expect(envOf(some.stdout).BAZ).toBeUndefined();
  });

  it("a submitter's NATS_PASSWORD and NATS_TOKEN never reach a task nor the stored record", async () => {
    const secrets = { NATS_PASSWORD: "pw-secret-4711", NATS_TOKEN: "tok-secret-4711", MUSTER_SYS_PASSWORD: "sys-secret-4711" };
    const r = await muster(["run", "-v", "--", "/usr/bin/env"], secrets);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain("secret-4711");
    const job = /muster: job (\S+):/.exec(r.stderr)![1]!;
    const shown = await muster(["show", "job", job, "--json"]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).not.toContain("secret-4711");

    const name = script("secret.sh", ["#!/bin/sh", "/usr/bin/env", "muster run -n 1 -- /usr/bin/env"]);
    const b = await muster(["batch", "--wait", "-o", "secret-%j.out", name], secrets);
    expect(b.code, b.stderr).toBe(0);
    const bjob = jobOf(b.stdout)!;
    const out = readFileSync(join(dir, `secret-${bjob}.out`), "utf8");
    expect(out).toContain(`SLURM_JOB_ID=${bjob}`);
    expect(out).not.toContain("secret-4711");
    expect(await muster(["show", "job", bjob, "--json"]).then((x) => x.stdout)).not.toContain("secret-4711");
    // What the supervisor stored: the job's record in its snapshot bucket.
    const nc = await c.connection();
    const { Kvm } = await import("@nats-io/kv");
    const kv = await new Kvm(nc).open(`${c.prefix}_snapshots`);
    const stored: string[] = [];
    for await (const key of await kv.keys()) stored.push((await kv.get(key))?.string() ?? "");
    for (const id of [job, bjob]) expect(stored.some((v) => v.includes(`"jobId":"${id}"`)), `record of job ${id}`).toBe(true);
    expect(stored.filter((v) => v.includes("secret-4711"))).toEqual([]);
  });

  it("a submitter's SLURM_* variables do not override the task's; an agent with MUSTER_SLURM_ENV=0 sets none", async () => {
    const r = await muster(["run", "-w", "node-1", "--", "sh", "-c", "echo $SLURM_JOB_ID $SLURM_PROCID $SLURM_CONF"], { SLURM_JOB_ID: "424242", SLURM_PROCID: "9", SLURM_CONF: "/etc/slurm.conf" });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\d+ 0 ?\n$/);
    expect(r.stdout).not.toContain("424242");

    const off = await muster(["run", "-w", "node-3", "--", "/usr/bin/env"]);
    expect(off.code, off.stderr).toBe(0);
    const env = envOf(off.stdout);
    expect(Object.keys(env).filter((k) => k.startsWith("SLURM"))).toEqual([]);
    expect(env.MUSTER_TASK_ID).toBe("0");
  });
});

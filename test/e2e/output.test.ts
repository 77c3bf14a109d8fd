/**
 * Every byte reaches the user: complete output in pipes and files, a quiet end on a closed pipe,
 * task output passed through byte for byte, a fast writer slowed down rather than cut, and `-o/-e`
 * filename patterns. A real nats-server, supervisor and agents running real processes, driven
 * through the built CLI and real `sh -c` pipelines.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MUSTER_BIN, jobIdOf, startCluster, type Cluster } from "../support/cluster.js";
import { waitFor } from "../support/wait.js";

let c: Cluster;
let dir: string;

beforeAll(async () => {
  c = await startCluster({ agents: 2, slots: 500 });
  dir = mkdtempSync(join(tmpdir(), "muster-output-"));
}, 60_000);

afterAll(async () => {
  await c?.stop();
});

interface ShellResult {
  readonly code: number | null;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** Runs `script` through a real `sh -c` with the cluster's environment; `$MUSTER` is the CLI. */
function sh(script: string, timeoutMs = 120_000): Promise<ShellResult> {
  return new Promise((resolve, reject) => {
    const p = spawn("sh", ["-c", script], { cwd: dir, env: { ...process.env, ...c.env, MUSTER: `${process.execPath} ${MUSTER_BIN}` }, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let err = "";
    p.stdout.on("data", (d: Buffer) => out.push(d));
    p.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.once("error", reject);
    p.once("close", (code) => {
      clearTimeout(t);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

describe("every command's output in pipes and files", () => {
  let job: string;

  beforeAll(async () => {
    const r = await c.muster(["run", "-v", "-n", "1000", "--", "true"], { timeoutMs: 180_000 });
    expect(r.code, r.stderr).toBe(0);
    job = jobIdOf(r.stderr);
  }, 200_000);

  it("show job --json of a 1,000-task job is as long in a pipe as in a file, 10 times out of 10", async () => {
    for (let i = 0; i < 10; i++) {
      const file = join(dir, `show-${i}.json`);
      const r = await sh(`$MUSTER show job ${job} --json > ${file} && $MUSTER show job ${job} --json | wc -c`);
      expect(r.code, r.stderr).toBe(0);
      const size = statSync(file).size;
      expect(size).toBeGreaterThan(256 * 1024);
      expect(Number(r.stdout.toString().trim()), `run ${i}`).toBe(size);
      expect(JSON.parse(readFileSync(file, "utf8")).steps[0].tasks).toHaveLength(1000);
    }
  }, 240_000);

  it("show job | head -1 exits 0 with nothing on stderr", async () => {
    const r = await sh(`{ $MUSTER show job ${job}; echo "muster $?" >&2; } | head -1`);
    expect(r.stderr).toBe("muster 0\n");
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toMatch(new RegExp(`^JobId=${job}\\b.*\\n$`));
    // A reader gone before muster writes (`true` reads nothing), and one that leaves in the middle
    // of far more than a pipe's buffer: quiet, status 0, each time.
    for (const cmd of [`show job ${job}`, `show job ${job} --json`, "history --json"]) {
      for (const reader of ["true", "head -c 1000"]) {
        const q = await sh(`{ $MUSTER ${cmd}; echo "muster $?" >&2; } | ${reader} >/dev/null`);
        expect(q.stderr, `${cmd} | ${reader}`).toBe("muster 0\n");
      }
    }
  }, 60_000);
});

describe("muster run passes task output through byte for byte", () => {
  it("1 MB of random bytes through cat is byte-identical", async () => {
    const src = join(dir, "random.bin");
    const bytes = randomBytes(1_000_000);
    writeFileSync(src, bytes);
    const r = await sh(`$MUSTER run -n 1 -- cat ${src} > random.out`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    expect(Buffer.compare(readFileSync(join(dir, "random.out")), bytes)).toBe(0);
  }, 120_000);

  it("--label prefixes lines at the byte level: invalid UTF-8 stays as it is, a last line without newline gets one", async () => {
    const r = await sh(`$MUSTER run -l -n 2 -- sh -c 'printf "a\\\\377b\\\\nlast"' | sort`);
    expect(r.code, r.stderr).toBe(0);
    const expected = Buffer.concat([Buffer.from("0: a"), Buffer.from([0xff]), Buffer.from("b\n0: last\n1: a"), Buffer.from([0xff]), Buffer.from("b\n1: last\n")]);
    expect(r.stdout.toString("hex")).toBe(expected.toString("hex"));
  }, 60_000);

  it("100 MB written as fast as a task can all arrives: the writer is slowed down, nothing is dropped", async () => {
    const src = join(dir, "big.bin");
    const bytes = randomBytes(100_000_000);
    writeFileSync(src, bytes);
    const r = await sh(`$MUSTER run -v -n 1 -- cat ${src} > big.out`, 600_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/lost|incomplete/);
    const got = readFileSync(join(dir, "big.out"));
    expect(got.length).toBe(bytes.length);
    expect(sha256(got)).toBe(sha256(bytes));
    const view = await c.showJob(jobIdOf(r.stderr));
    expect(view.steps[0].tasks[0].outputLostBytes).toBeUndefined();
    expect(c.logs("node-1") + c.logs("node-2")).not.toContain("io.dropped");
  }, 600_000);
});

describe("muster run with a slow reader", () => {
  it("holds the task output back while its own stdout is not read, and loses nothing", async () => {
    const src = join(dir, "slow.bin");
    const bytes = randomBytes(30_000_000);
    writeFileSync(src, bytes);
    // The reader starts late: muster run's stdout pipe fills and it stops taking output meanwhile.
    const r = await sh(`$MUSTER run -n 1 -- cat ${src} | { sleep 2; cat > slow.out; }`, 300_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    expect(sha256(readFileSync(join(dir, "slow.out")))).toBe(sha256(bytes));
  }, 300_000);

  it("a reader that starts only well after the step ended still gets every byte (time spent blocked is not silence)", async () => {
    const src = join(dir, "late.bin");
    const bytes = randomBytes(12_000_000);
    writeFileSync(src, bytes);
    // The step ends within a second or two; the reader sleeps past muster run's 3 s wait for quiet output.
    const r = await sh(`$MUSTER run -n 1 -- cat ${src} | { sleep 7; cat > late.out; }`, 300_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    expect(sha256(readFileSync(join(dir, "late.out")))).toBe(sha256(bytes));
  }, 300_000);
});

describe("muster run on a closed pipe", () => {
  it("run | head -1: muster run exits 0 without a trace and the step is cancelled, as srun does", async () => {
    const r = await sh(`{ $MUSTER run -v -n 1 -- yes; echo "muster $?" >&2; } | head -1`);
    expect(r.stdout.toString()).toBe("y\n");
    expect(r.stderr).toMatch(/^muster: job \S+: 1 task on \S+\nmuster 0\n$/);
    const job = jobIdOf(r.stderr);
    await waitFor(async () => (await c.showJob(job)).state === "CANCELLED", { timeoutMs: 30_000, message: `job ${job} cancelled` });
  }, 60_000);
});

describe("output that cannot be slowed down", () => {
  it("a background child flooding the pipe after its task ended: muster run says which task lost how many bytes, and show job records it", async () => {
    const src = join(dir, "flood.bin");
    writeFileSync(src, randomBytes(64_000_000));
    // The task (the shell) ends at once; its background cat goes on writing into the task's stdout.
    const r = await sh(`$MUSTER run -v -n 1 -- sh -c 'cat ${src} & exit 0' > flood.out`, 300_000);
    expect(r.code, r.stderr).toBe(0);
    const m = /^muster: error: task 0: (\d+) bytes of stdout lost$/m.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    const lost = Number(m![1]);
    expect(lost).toBeGreaterThan(0);
    const view = await c.showJob(jobIdOf(r.stderr));
    expect(view.steps[0].tasks[0].outputLostBytes).toBe(lost);
    const text = await c.muster(["show", "job", view.jobId]);
    expect(text.stdout).toContain(`   OutputLostBytes=0:${lost}\n`);
    // What did arrive is the file's beginning, up to the first loss.
    const got = readFileSync(join(dir, "flood.out"));
    expect(got.subarray(0, 1_000_000).equals(readFileSync(src).subarray(0, 1_000_000))).toBe(true);
  }, 300_000);
});

describe("run -o/-e and batch -o/-e filename patterns", () => {
  it("-o with %t writes one file per task, truncating; -e sends stderr elsewhere; %j %s %N %n %u %x %% expand", async () => {
    const sub = mkdtempSync(join(dir, "pat-"));
    writeFileSync(join(sub, "out-0.txt"), "old content that must go\n".repeat(10));
    const r = await sh(`cd ${sub} && $MUSTER run -v -J myjob -n 3 -o 'out-%t.txt' -e 'err-%j.%s-%u-%x-%%.txt' -- sh -c 'echo "o$MUSTER_TASK_ID"; echo "e$MUSTER_TASK_ID" >&2'`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.length).toBe(0);
    const job = jobIdOf(r.stderr);
    for (const t of [0, 1, 2]) expect(readFileSync(join(sub, `out-${t}.txt`), "utf8")).toBe(`o${t}\n`);
    const err = readFileSync(join(sub, `err-${job}.0-alice-myjob-%.txt`), "utf8");
    expect(err.split("\n").filter(Boolean).sort()).toEqual(["e0", "e1", "e2"]);

    const n = await sh(`cd ${sub} && $MUSTER run -v -N 2 -n 4 -o 'node-%N-%n.txt' -- sh -c 'echo "$MUSTER_NODE $MUSTER_NODEID $MUSTER_TASK_ID"'`);
    expect(n.code, n.stderr).toBe(0);
    const view = await c.showJob(jobIdOf(n.stderr));
    const nodes = [...new Set<string>(view.steps[0].tasks.map((t: { node: string }) => t.node))];
    expect(nodes).toHaveLength(2);
    const files = readdirSync(sub).filter((f) => f.startsWith("node-"));
    expect(files).toHaveLength(2);
    for (const f of files) {
      const [, node, index] = /^node-(.+)-(\d+)\.txt$/.exec(f)!;
      for (const line of readFileSync(join(sub, f), "utf8").split("\n").filter(Boolean)) expect(line.split(" ").slice(0, 2)).toEqual([node, index]);
    }
  }, 120_000);

  it("-o without -e takes stderr too; -o none discards; -o N keeps only task N's output", async () => {
    const sub = mkdtempSync(join(dir, "pat-"));
    const both = await sh(`cd ${sub} && $MUSTER run -n 1 -o both.txt -- sh -c 'echo out; echo err >&2'`);
    expect([both.code, both.stdout.toString(), both.stderr]).toEqual([0, "", ""]);
    expect(readFileSync(join(sub, "both.txt"), "utf8").split("\n").filter(Boolean).sort()).toEqual(["err", "out"]);
    const none = await sh(`$MUSTER run -n 2 -o none -- sh -c 'echo out; echo err >&2'`);
    expect([none.code, none.stdout.toString(), none.stderr]).toEqual([0, "", ""]);
    const one = await sh(`$MUSTER run -n 3 -o 1 -- sh -c 'echo "out $MUSTER_TASK_ID"; echo "err $MUSTER_TASK_ID" >&2'`);
    expect([one.code, one.stdout.toString(), one.stderr]).toEqual([0, "out 1\n", "err 1\n"]);
  }, 120_000);

  it("batch -o/-e take the same patterns", async () => {
    const sub = mkdtempSync(join(dir, "batch-"));
    writeFileSync(join(sub, "job.sh"), "#!/bin/sh\necho to-out\necho to-err >&2\nmuster run -n 2 -o 'step-%x-%J-%t.out' -- sh -c 'echo step $MUSTER_TASK_ID'\n", { mode: 0o755 });
    const r = await sh(`cd ${sub} && $MUSTER batch -n 2 -W -J bj -o 'b-%x-%j-%s-%N.out' -e 'b-%4j.err' ./job.sh`);
    expect(r.code, r.stderr).toBe(0);
    const job = /Submitted batch job (\S+)/.exec(r.stdout.toString())![1]!;
    const view = await c.showJob(job);
    const node = view.steps.find((s: { stepId: string }) => s.stepId === "batch").tasks[0].node;
    expect(readFileSync(join(sub, `b-bj-${job}-batch-${node}.out`), "utf8")).toBe("to-out\n");
    expect(readFileSync(join(sub, `b-${job.padStart(4, "0")}.err`), "utf8")).toBe("to-err\n");
    // A step of the batch job names its files with the job's name and its own step id.
    for (const t of [0, 1]) expect(readFileSync(join(sub, `step-bj-${job}.0-${t}.out`), "utf8")).toBe(`step ${t}\n`);
  }, 120_000);

  it("a bad -o value is a usage error that starts nothing", async () => {
    const r = await c.muster(["run", "-o", "", "--", "true"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^muster: error: run: option -o needs .*\n$/);
  });
});

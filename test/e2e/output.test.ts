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

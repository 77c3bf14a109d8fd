/**
 * `muster up`, the local cluster, end to end through the built binary: it starts nats-server when
 * nothing answers (and reuses a running one), runs the demo, stops on Ctrl-C, and leaves no
 * process behind.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MUSTER_BIN, type CommandResult } from "../support/cluster.js";
import { startNatsServer, uniquePrefix, type NatsServerHandle } from "../support/nats-fixture.js";
import { waitFor } from "../support/wait.js";

const dirs: string[] = [];
const prefixes: string[] = [];

afterEach(async () => {
  // Whatever a failed test left behind is killed here, so that it cannot disturb the next one.
  for (const prefix of prefixes.splice(0)) for (const pid of pidsWithPrefix(prefix)) tryKill(pid);
});

afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function tryKill(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** A port on 127.0.0.1 where nothing listens. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: "127.0.0.1", port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

/** Live processes (not zombies) whose environment carries this test's MUSTER_PREFIX: everything `up` started inherits it. */
function pidsWithPrefix(prefix: string): number[] {
  const needle = `MUSTER_PREFIX=${prefix}\0`;
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (/^\d+ \(.*\) Z /.test(stat)) continue;
      if (readFileSync(`/proc/${entry}/environ`, "latin1").includes(needle)) out.push(Number(entry));
    } catch {
      // gone, or not ours
    }
  }
  return out;
}

/** The last lines of every log `up` wrote, for a failure message. */
function logTails(cwd: string): string {
  const dir = join(cwd, ".muster", "logs");
  if (!existsSync(dir)) return "(no .muster/logs)";
  return readdirSync(dir)
    .map((f) => `--- ${f}\n${readFileSync(join(dir, f), "utf8").split("\n").slice(-8).join("\n")}`)
    .join("\n");
}

interface Up {
  readonly pid: number;
  stderr(): string;
  stdout(): string;
  readonly done: Promise<CommandResult>;
  kill(signal: NodeJS.Signals): void;
}

async function startUp(args: string[], natsUrl: string, prefix: string): Promise<{ up: Up; cwd: string }> {
  const cwd = await mkdtemp(join(tmpdir(), "muster-up-"));
  dirs.push(cwd);
  prefixes.push(prefix);
  const env: Record<string, string> = { ...(process.env as Record<string, string>), NATS_URL: natsUrl, MUSTER_PREFIX: prefix, MUSTER_USER: "alice" };
  delete env.NODE_OPTIONS;
  const p = spawn(process.execPath, [MUSTER_BIN, "up", ...args], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  p.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  p.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  const done = new Promise<CommandResult>((res) => p.once("close", (code, signal) => res({ code, signal, stdout: out, stderr: err })));
  return { up: { pid: p.pid!, stderr: () => err, stdout: () => out, done, kill: (s) => p.kill(s) }, cwd };
}

/** Waits for the result, killing the process when it takes longer than `ms`. */
async function within(up: Up, ms: number): Promise<CommandResult> {
  const t = setTimeout(() => up.kill("SIGKILL"), ms);
  try {
    return await up.done;
  } finally {
    clearTimeout(t);
  }
}

/** Nothing `up` started is left: no process with the prefix, and (when it started NATS) the port is closed. */
async function expectNothingLeft(prefix: string, port?: number): Promise<void> {
  await waitFor(() => pidsWithPrefix(prefix).length === 0, { timeoutMs: 5_000, intervalMs: 100, message: `no process with MUSTER_PREFIX=${prefix}` }).catch(() => {
    const left = pidsWithPrefix(prefix).map((pid) => `${pid}: ${readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ")}`);
    expect(left).toEqual([]);
  });
  if (port !== undefined) expect(await portOpen(port)).toBe(false);
}

describe("muster up", () => {
  it("--demo with no NATS running: starts nats-server, runs the demo, stops everything, exit 0", async () => {
    const port = await freePort();
    const prefix = uniquePrefix("up_demo");
    const { up, cwd } = await startUp(["--demo"], `nats://127.0.0.1:${port}`, prefix);
    const r = await within(up, 90_000);
    expect(r.code, `${r.stderr}\n${logTails(cwd)}`).toBe(0);
    expect(r.stderr).toMatch(/started nats-server/);
    expect(r.stderr).toMatch(new RegExp(`local cluster up: NATS nats://127\\.0\\.0\\.1:${port} \\(started here`));
    expect(r.stderr).toContain("Task Exit Code Summary");
    expect(r.stderr).toMatch(/node-\d+: task 5: Exited with exit code 3/);
    expect(r.stderr).toMatch(/demo: muster run exited 3/);
    // The demo's tasks ran and were labelled.
    expect(r.stdout).toMatch(/^0: rank 0 on node-\d+$/m);
    expect(r.stdout).toMatch(/^7: rank 7 done$/m);
    // Logs of everything it started are in .muster/logs.
    const logs = join(cwd, ".muster", "logs");
    for (const f of ["nats-server.log", "supervisor.log", "node-1.log", "node-2.log"]) expect(existsSync(join(logs, f)), f).toBe(true);
    await expectNothingLeft(prefix, port);
  }, 120_000);

  describe("with a NATS already running", () => {
    let nats: NatsServerHandle;
    beforeAll(async () => {
      nats = await startNatsServer();
    });
    afterAll(async () => {
      await nats?.cleanup();
    });

    it("--demo reuses it (\"already running\"), exits 0 and leaves the server running", async () => {
      const prefix = uniquePrefix("up_reuse");
      const { up, cwd } = await startUp(["--demo"], nats.url, prefix);
      const r = await within(up, 90_000);
      expect(r.code, `${r.stderr}\n${logTails(cwd)}`).toBe(0);
      expect(r.stderr).toMatch(/already running/);
      expect(r.stderr).not.toMatch(/started nats-server/);
      expect(r.stderr).toMatch(/node-\d+: task 5: Exited with exit code 3/);
      expect(existsSync(join(cwd, ".muster", "logs", "nats-server.log"))).toBe(false);
      await expectNothingLeft(prefix);
      expect(await portOpen(nats.port)).toBe(true);
    }, 120_000);
  });

  it("without --demo runs until SIGINT, then exits 0 within 15 s and leaves nothing running", async () => {
    const port = await freePort();
    const prefix = uniquePrefix("up_sigint");
    const { up, cwd } = await startUp(["--agents", "3"], `nats://127.0.0.1:${port}`, prefix);
    let exited = false;
    void up.done.then(() => (exited = true));
    await waitFor(() => exited || up.stderr().includes("local cluster up"), { timeoutMs: 60_000, intervalMs: 100 }).catch(() => undefined);
    if (!up.stderr().includes("local cluster up")) {
      throw new Error(`"local cluster up" not in stderr (exited: ${exited}):\n${up.stderr()}\n${logTails(cwd)}`);
    }
    expect(up.stderr()).toMatch(/agents node-1\.\.node-3/);
    expect(up.stderr()).toMatch(/Ctrl-C/);
    // Started: nats-server, a supervisor and three agents.
    expect(pidsWithPrefix(prefix).length).toBeGreaterThanOrEqual(5);
    expect(await portOpen(port)).toBe(true);
    const sent = Date.now();
    up.kill("SIGINT");
    const r = await within(up, 30_000);
    expect(Date.now() - sent).toBeLessThan(15_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.signal).toBeNull();
    await expectNothingLeft(prefix, port);
  }, 120_000);
});

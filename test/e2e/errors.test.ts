/**
 * Clear, fast errors and the connection options, end to end through the built binary: a stopped
 * supervisor, a NATS without JetStream, a tls:// URL to a plain server, a second `muster up` beside
 * a running one, connection flags before and after the command, the `nats` CLI's contexts; and
 * `muster run`'s status line on a real pseudo-terminal (util-linux `script`), absent off a terminal.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MUSTER_BIN, startCluster, type Cluster, type CommandResult } from "../support/cluster.js";
import { startNatsServer, uniquePrefix, type NatsServerHandle } from "../support/nats-fixture.js";
import { waitFor } from "../support/wait.js";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(name: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), `muster-${name}-`));
  dirs.push(d);
  return d;
}

/** Runs the built binary with exactly `env` over this process's environment (NATS_* and MUSTER_* of the caller removed). */
function muster(args: readonly string[], env: Record<string, string>, opts: { cwd?: string; timeoutMs?: number } = {}): Promise<CommandResult & { ms: number }> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(NATS_|MUSTER_)/.test(k) && k !== "NODE_OPTIONS")) as Record<string, string>;
  const started = Date.now();
  const p = spawn(process.execPath, [MUSTER_BIN, ...args], { env: { ...base, MUSTER_USER: "alice", ...env }, cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  p.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  p.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  const t = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
  return new Promise((res) =>
    p.once("close", (code, signal) => {
      clearTimeout(t);
      res({ code, signal, stdout: out, stderr: err, ms: Date.now() - started });
    }),
  );
}

/** The single line on stderr (asserting there is exactly one, and nothing on stdout). */
function oneLine(r: CommandResult): string {
  expect(r.stdout).toBe("");
  const lines = r.stderr.split("\n").filter(Boolean);
  expect(lines, r.stderr).toHaveLength(1);
  return lines[0]!;
}

/** Live processes whose environment carries this MUSTER_PREFIX (everything `up` started inherits it). */
function pidsWithPrefix(prefix: string): number[] {
  const needle = `MUSTER_PREFIX=${prefix}\0`;
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${entry}/stat`, "utf8"))) continue;
      if (readFileSync(`/proc/${entry}/environ`, "latin1").includes(needle)) out.push(Number(entry));
    } catch {
      // gone, or not ours
    }
  }
  return out;
}

describe("supervisor stopped", () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({ agents: 0 });
    await waitFor(async () => (await c.muster(["queue"])).code === 0, { timeoutMs: 30_000, intervalMs: 200, message: "supervisor answers" });
    const sup = c.supervisor;
    const gone = new Promise((r) => sup.once("exit", r));
    sup.kill("SIGTERM");
    await gone;
  }, 60_000);
  afterAll(async () => {
    await c?.stop();
  });

  it("muster queue fails with one line and exit 1, in well under the old 6 s", async () => {
    const r = await muster(["queue"], { NATS_URL: c.nats.url, MUSTER_PREFIX: c.prefix });
    expect(r.code).toBe(1);
    expect(oneLine(r)).toBe(`muster: error: no supervisor answers on ${c.prefix}.ctl.alice.query: start one with "muster up" or "muster supervisor"`);
    console.log(`supervisor stopped: muster queue failed after ${r.ms} ms (process start to exit)`);
    // The issue asks for under 2 s; the bound leaves room for a loaded 2-core machine (it was 6.2 s).
    expect(r.ms).toBeLessThan(3000);
  });

  it("inside a job (MUSTER_JOB_ID set) a command rides out a supervisor restart instead", async () => {
    const env = { NATS_URL: c.nats.url, MUSTER_PREFIX: c.prefix, MUSTER_JOB_ID: "1", NATS_TIMEOUT: "20" };
    const waiting = muster(["queue", "--noheader"], env);
    // The command is running (and being told "no responders") while the supervisor starts.
    await waitFor(() => pidsWithPrefix(c.prefix).length > 0, { timeoutMs: 10_000, message: "queue started" });
    await c.startSupervisor();
    const r = await waiting;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
  }, 60_000);
});

describe("NATS without JetStream", () => {
  let bare: NatsServerHandle;
  beforeAll(async () => {
    bare = await startNatsServer({ jetstream: false });
  });
  afterAll(async () => {
    await bare?.cleanup();
  });

  const noJs = (url: string) => new RegExp(`^muster: error: (supervisor: )?NATS at ${url.replaceAll(".", "\\.")} has no JetStream .*start nats-server with -js$`);

  it("client commands, muster supervisor, agent, inspect and up say so within 5 s, with one line and exit 1", async () => {
    const prefix = uniquePrefix("nojs");
    const env = { NATS_URL: bare.url, MUSTER_PREFIX: prefix };
    const cwd = await tempDir("nojs");
    for (const args of [["queue"], ["nodes"], ["run", "-n", "2", "--", "true"], ["watch", "1"], ["supervisor"], ["inspect", "--port", "0"], ["up", "--agents", "1"]]) {
      const r = await muster(args, env, { cwd, timeoutMs: 30_000 });
      expect([args.join(" "), r.code], r.stderr).toEqual([args.join(" "), 1]);
      expect(oneLine(r)).toMatch(noJs(bare.url));
      expect(r.ms, args.join(" ")).toBeLessThan(5000);
    }
    // An agent logs (JSON lines) before it finds out; its last line says why it stopped.
    const agent = await muster(["agent", "--node", "n1"], { ...env, MUSTER_LOG_LEVEL: "warn" }, { timeoutMs: 30_000 });
    expect(agent.code, agent.stderr).toBe(1);
    expect(agent.stderr.trimEnd().split("\n").at(-1)).toMatch(noJs(bare.url));
    expect(agent.ms).toBeLessThan(5000);
    // `up` refused before it wrote or started anything.
    expect(existsSync(join(cwd, ".muster"))).toBe(false);
    expect(pidsWithPrefix(prefix)).toEqual([]);
  }, 60_000);
});

describe("tls:// demands TLS", () => {
  let plain: NatsServerHandle;
  beforeAll(async () => {
    plain = await startNatsServer();
  });
  afterAll(async () => {
    await plain?.cleanup();
  });

  it("NATS_URL=tls://… and -s tls://… to a plain server fail with one clear line", async () => {
    const url = `tls://127.0.0.1:${plain.port}`;
    for (const [args, env] of [
      [["queue"], { NATS_URL: url }],
      [["-s", url, "nodes"], {}],
    ] as const) {
      const r = await muster(args, { ...env, MUSTER_PREFIX: uniquePrefix("tls") });
      expect(r.code, r.stderr).toBe(1);
      expect(oneLine(r)).toBe(`muster: error: cannot connect to NATS at ${url}: the server does not offer TLS, which a tls:// URL or a TLS option demands`);
    }
  });
});

describe("connection options", () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({ agents: 1 });
  }, 60_000);
  afterAll(async () => {
    await c?.stop();
  });

  const nodeNames = (r: CommandResult) => (JSON.parse(r.stdout) as { node: string }[]).map((n) => n.node);

  it("-s/--server and --prefix before or after the command name win over NATS_URL", async () => {
    // NATS_URL points nowhere: only the flags can reach the cluster.
    const env = { NATS_URL: "nats://127.0.0.1:1" };
    for (const args of [
      ["-s", c.nats.url, "--prefix", c.prefix, "nodes", "--json"],
      ["--server", c.nats.url, "nodes", "--json", "--prefix", c.prefix],
      [`--server=${c.nats.url}`, `--prefix=${c.prefix}`, "nodes", "--json"],
      ["nodes", "--json", "-s", c.nats.url, "--prefix", c.prefix],
    ]) {
      const r = await muster(args, env);
      expect([args.join(" "), r.code], r.stderr).toEqual([args.join(" "), 0]);
      expect(nodeNames(r)).toEqual(["node-1"]);
    }
  });

  it("after the command name its own short option wins (history -s is the state); before it, -s is the server", async () => {
    const r = await muster(["-s", c.nats.url, "history", "-s", "COMPLETED", "-P", "--noheader"], { MUSTER_PREFIX: c.prefix });
    expect(r.code, r.stderr).toBe(0);
    const bad = await muster(["-s", c.nats.url, "history", "-s", "NOT_A_STATE"], { MUSTER_PREFIX: c.prefix });
    expect(bad.code).toBe(2);
    expect(oneLine(bad)).toMatch(/NOT_A_STATE/);
  });

  it("an unknown option before the command is a usage error naming it (exit 2)", async () => {
    const r = await muster(["--bogus", "nodes"], {});
    expect(r.code).toBe(2);
    expect(oneLine(r)).toBe("muster: error: muster: unknown option --bogus");
  });

  it("--context NAME, NATS_CONTEXT and the selected context are read from the nats CLI's files", async () => {
    const home = await tempDir("home");
    const ctxDir = join(home, ".config", "nats", "context");
    await mkdir(ctxDir, { recursive: true });
    await writeFile(join(ctxDir, "lab.json"), JSON.stringify({ description: "test cluster", url: c.nats.url, token: "" }));
    await writeFile(join(ctxDir, "nowhere.json"), JSON.stringify({ url: "nats://127.0.0.1:1" }));
    const env = { HOME: home, MUSTER_PREFIX: c.prefix };
    for (const [args, extra] of [
      [["--context", "lab", "nodes", "--json"], {}],
      [["nodes", "--json", "--context", "lab"], {}],
      [["nodes", "--json"], { NATS_CONTEXT: "lab" }],
    ] as const) {
      const r = await muster(args, { ...env, ...extra });
      expect([args.join(" "), r.code], r.stderr).toEqual([args.join(" "), 0]);
      expect(nodeNames(r)).toEqual(["node-1"]);
    }
    // The selected one (`nats context select lab` writes context.txt) is used without --context.
    await writeFile(join(home, ".config", "nats", "context.txt"), "lab");
    const selected = await muster(["nodes", "--json"], env);
    expect(selected.code, selected.stderr).toBe(0);
    expect(nodeNames(selected)).toEqual(["node-1"]);
    // NATS_URL and -s override the context's url, as with the nats CLI.
    const over = await muster(["--context", "nowhere", "-s", c.nats.url, "nodes", "--json"], env);
    expect(over.code, over.stderr).toBe(0);
    const viaEnv = await muster(["--context", "nowhere", "nodes", "--json"], { ...env, NATS_URL: c.nats.url });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    // A context that does not exist: one line naming it and its file, exit 2.
    const missing = await muster(["--context", "nope", "nodes"], env);
    expect(missing.code).toBe(2);
    expect(oneLine(missing)).toBe(`muster: error: cannot read NATS context "nope" (${join(ctxDir, "nope.json")}): no such context`);
  });
});

describe("a second muster up beside a running one", () => {
  let nats: NatsServerHandle;
  beforeAll(async () => {
    nats = await startNatsServer();
  });
  afterAll(async () => {
    await nats?.cleanup();
  });

  it("exits non-zero with a clear line, starts nothing, and the first cluster's node stays online", async () => {
    const prefix = uniquePrefix("up_twice");
    const env = { NATS_URL: nats.url, MUSTER_PREFIX: prefix };
    const cwd1 = await tempDir("up1");
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(NATS_|MUSTER_)/.test(k))) as Record<string, string>;
    const first = spawn(process.execPath, [MUSTER_BIN, "up", "--agents", "1"], { cwd: cwd1, env: { ...base, MUSTER_USER: "alice", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let err1 = "";
    first.stderr.setEncoding("utf8").on("data", (d: string) => (err1 += d));
    first.stdout.resume();
    const firstDone = new Promise<number | null>((r) => first.once("close", (code) => r(code)));
    try {
      await waitFor(() => err1.includes("local cluster up") || first.exitCode !== null, { timeoutMs: 60_000, intervalMs: 100 });
      expect(err1).toContain("local cluster up");
      const before = await muster(["nodes", "--json"], env);
      expect(before.code, before.stderr).toBe(0);
      const node1 = (JSON.parse(before.stdout) as { node: string; state: string; epoch: string }[]).find((n) => n.node === "node-1")!;
      expect(node1.state).toBe("online");
      const pids = pidsWithPrefix(prefix).sort();

      const cwd2 = await tempDir("up2");
      const second = await muster(["up", "--agents", "1"], env, { cwd: cwd2, timeoutMs: 60_000 });
      expect(second.code).toBe(1);
      expect(oneLine(second)).toBe(
        `muster: error: a supervisor already answers on prefix "${prefix}" at ${nats.url}: not starting another cluster (stop that one first, or use another MUSTER_PREFIX / --prefix)`,
      );
      const sup = await muster(["supervisor"], env);
      expect(sup.code).toBe(1);
      expect(oneLine(sup)).toMatch(/a supervisor already answers on prefix .*: not starting a second one/);
      // Nothing changed: no new process, no .muster folder, node-1 online in the same incarnation.
      expect(existsSync(join(cwd2, ".muster"))).toBe(false);
      expect(pidsWithPrefix(prefix).sort()).toEqual(pids);
      const after = await muster(["nodes", "--json"], env);
      expect(after.code, after.stderr).toBe(0);
      expect(JSON.parse(after.stdout)).toEqual([expect.objectContaining({ node: "node-1", state: "online", epoch: node1.epoch })]);
      const run = await muster(["run", "-n", "1", "--", "true"], env);
      expect(run.code, run.stderr).toBe(0);
    } finally {
      first.kill("SIGINT");
      await firstDone;
    }
  }, 120_000);
});

describe("muster run's status line", () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({ agents: 1, slots: 8 });
  }, 60_000);
  afterAll(async () => {
    await c?.stop();
  });

  // Rank R prints one line, sleeps, prints another; rank 3 fails. The step lasts about 3 s.
  const STEP = ["run", "-n", "6", "-l", "--", "sh", "-c", 'echo "start $MUSTER_TASK_ID"; sleep $((1 + MUSTER_TASK_ID / 2)); echo "end $MUSTER_TASK_ID"; [ "$MUSTER_TASK_ID" != 3 ]'];

  /** Runs `muster ARGS` under a pseudo-terminal (stdout and stderr both on it); resolves with everything the terminal received. */
  function onTerminal(args: readonly string[]): Promise<{ code: number | null; screen: string }> {
    const quoted = [process.execPath, MUSTER_BIN, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
    const p = spawn("script", ["-qefc", quoted, "/dev/null"], { env: { ...process.env, ...c.env, COLUMNS: "200" }, stdio: ["ignore", "pipe", "pipe"] });
    let screen = "";
    p.stdout.setEncoding("utf8").on("data", (d: string) => (screen += d));
    p.stderr.setEncoding("utf8").on("data", (d: string) => (screen += d));
    const t = setTimeout(() => p.kill("SIGKILL"), 60_000);
    return new Promise((res) =>
      p.once("close", (code) => {
        clearTimeout(t);
        res({ code, screen });
      }),
    );
  }

  const ERASE = "\r\x1b[2K";
  const STATUS = /muster: job \d+: 6 tasks: \d+ launching, \d+ running, \d+ exited, \d+ failed; \d\d:\d\d:\d\d/g;

  it("on a terminal: one live line with the counts and elapsed time, erased before output and at the end", async () => {
    const { code, screen } = await onTerminal(STEP);
    expect(code, screen).toBe(1);
    const drawn = [...screen.matchAll(STATUS)].map((m) => m[0]);
    expect(drawn.length, screen).toBeGreaterThan(0);
    // Counts move as tasks end: some draw shows tasks running, a later one shows the failure.
    expect(drawn.some((l) => /[1-9]\d* running/.test(l)), drawn.join("\n")).toBe(true);
    expect(drawn.some((l) => / 1 failed/.test(l)), drawn.join("\n")).toBe(true);
    // Every draw starts by erasing the line, and the line is erased again before anything else is written.
    for (const m of screen.matchAll(STATUS)) {
      expect(screen.slice(m.index! - ERASE.length, m.index)).toBe(ERASE);
      const after = screen.slice(m.index! + m[0].length);
      expect(after.startsWith(ERASE), JSON.stringify(after.slice(0, 40))).toBe(true);
    }
    // Task output is whole lines, never glued to the status line; the screen ends without it.
    const text = screen.replaceAll(STATUS, "").replaceAll(ERASE, "").replaceAll("\r", "");
    for (let r = 0; r < 6; r++) {
      expect(text).toMatch(new RegExp(`^${r}: start ${r}$`, "m"));
      expect(text).toMatch(new RegExp(`^${r}: end ${r}$`, "m"));
    }
    const tail = screen.slice(screen.lastIndexOf("muster: job"));
    expect(tail).toContain(ERASE);
    expect(screen.trimEnd().endsWith("task 3: Exited with exit code 1")).toBe(true);
  }, 90_000);

  it("-Q/--quiet on a terminal: no status line", async () => {
    const { code, screen } = await onTerminal(["run", "-Q", ...STEP.slice(1)]);
    expect(code, screen).toBe(1);
    expect(screen).not.toMatch(STATUS);
    expect(screen).not.toContain("\x1b[");
  }, 90_000);

  it("off a terminal: stderr carries no byte of it", async () => {
    const ok = ["run", "-n", "4", "--", "sh", "-c", "sleep 2; echo out $MUSTER_TASK_ID"];
    const r = await c.muster(ok);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout.split("\n").filter(Boolean).sort()).toEqual(["out 0", "out 1", "out 2", "out 3"]);
  }, 90_000);
});

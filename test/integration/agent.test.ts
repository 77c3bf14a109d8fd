// The agent against a real nats-server, running real processes: exit statuses (core flag
// included), launch failures, signals, output forwarding, bad commands, events that survive a
// NATS crash, and graceful shutdown (in process and as a separate process started with SIGINT ignored).
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { chmod, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";
import { ensureStreams } from "../../src/nats/streams.js";
import { PROTOCOL_VERSION, createSubjects, encodeMessage } from "../../src/protocol/index.js";
import type { CommandAck, IoChunk, LaunchCommand, SignalCommand, Subjects, TaskEnded } from "../../src/protocol/index.js";
import { LAUNCHER_MAX_IN_FLIGHT, createAgent, taskEventMsgId } from "../../services/agent/index.js";
import type { Agent } from "../../services/agent/index.js";
import { startNatsServer, uniquePrefix, type NatsServerHandle } from "../support/nats-fixture.js";
import { waitFor } from "../support/wait.js";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "../..");
const NODE = "n1";
const logger = createLogger({ level: process.env.MUSTER_TEST_LOG ?? "silent", pretty: false });

interface Stored {
  readonly subject: string;
  readonly seq: number;
  /** Server receive time in nanoseconds, comparable across streams. */
  readonly ns: bigint;
  readonly msgId: string | undefined;
  readonly json: any;
}

interface Ctx {
  readonly prefix: string;
  readonly subjects: Subjects;
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly agent: Agent;
  readonly cwd: string;
}

let server: NatsServerHandle;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  server = await startNatsServer();
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

afterAll(async () => {
  await server?.cleanup();
});

function settings(prefix: string): Record<string, string> {
  return { NATS_URL: server.url, MUSTER_PREFIX: prefix, MUSTER_USER: "tester", MUSTER_HEARTBEAT_INTERVAL: "0.5", MUSTER_KILL_WAIT: "2", NATS_TIMEOUT: "2" };
}

async function setup(name: string, opts: { start?: boolean; streams?: boolean; logger?: typeof logger } = {}): Promise<Ctx> {
  const prefix = uniquePrefix(name);
  const subjects = createSubjects(prefix);
  const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  cleanups.push(() => nc.close());
  const jsm = await jetstreamManager(nc, { timeout: 1_000 });
  if (opts.streams ?? true) await ensureStreams(jsm, subjects, { replicas: 1, retentionSeconds: 3600 });
  const cwd = await mkdtemp(join(tmpdir(), "muster-agent-test-"));
  cleanups.push(() => rm(cwd, { recursive: true, force: true }));
  const agent = createAgent({ config: loadConfig(settings(prefix)), node: NODE, slots: 2, logger: opts.logger ?? logger });
  cleanups.push(() => agent.shutdown());
  if (opts.start ?? true) await agent.start();
  return { prefix, subjects, nc, jsm, agent, cwd };
}

function nanos(timestamp: string): bigint {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(timestamp);
  if (!m) throw new Error(`unexpected timestamp ${timestamp}`);
  return BigInt(Date.parse(`${m[1]}Z`)) * 1_000_000n + BigInt((m[2] ?? "").padEnd(9, "0").slice(0, 9));
}

/** Every message still stored in a stream whose subject passes the filter, in stream order. */
async function readStream(jsm: JetStreamManager, stream: string, filter: (subject: string) => boolean = () => true): Promise<Stored[]> {
  const info = await jsm.streams.info(stream);
  const out: Stored[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (!m || !filter(m.subject)) continue;
    out.push({ subject: m.subject, seq: m.seq, ns: nanos(m.timestamp), msgId: m.header?.get("Nats-Msg-Id") || undefined, json: m.json() });
  }
  return out;
}

async function lastBySubject(jsm: JetStreamManager, stream: string, subject: string): Promise<Stored | undefined> {
  const m = await jsm.streams.getMessage(stream, { last_by_subj: subject }).catch(() => null);
  return m ? { subject: m.subject, seq: m.seq, ns: nanos(m.timestamp), msgId: m.header?.get("Nats-Msg-Id") || undefined, json: m.json() } : undefined;
}

function jobEvents(ctx: Ctx, job: string, node = NODE): Promise<Stored[]> {
  const head = `${ctx.prefix}.evt.${node}.${job}.`;
  return readStream(ctx.jsm, ctx.subjects.streams.events.name, (s) => s.startsWith(head));
}

function jobOutput(ctx: Ctx, job: string): Promise<Stored[]> {
  const head = `${ctx.prefix}.io.${job}.`;
  return readStream(ctx.jsm, ctx.subjects.streams.io.name, (s) => s.startsWith(head));
}

async function waitEnded(ctx: Ctx, job: string, count = 1, node = NODE, timeoutMs = 10_000): Promise<Stored[]> {
  return waitFor(
    async () => {
      const events = await jobEvents(ctx, job, node);
      const ended = events.filter((e) => e.json.type === "task.ended");
      return ended.length >= count ? events : undefined;
    },
    { timeoutMs, intervalMs: 50, message: `${count} task.ended of job ${job}` },
  );
}

function launchCmd(ctx: Ctx, job: string, argv: string[], extra: Partial<LaunchCommand> = {}): LaunchCommand {
  return {
    type: "cmd.launch",
    v: PROTOCOL_VERSION,
    job,
    step: 0,
    node: NODE,
    epoch: ctx.agent.epoch,
    user: "tester",
    argv,
    env: {},
    cwd: ctx.cwd,
    ntasks: 1,
    nnodes: 1,
    nodeIndex: 0,
    ranks: "0",
    label: false,
    killWaitSeconds: 2,
    ...extra,
  };
}

async function request(ctx: Ctx, payload: LaunchCommand | SignalCommand | Uint8Array | string, node = NODE): Promise<CommandAck> {
  const data = typeof payload === "string" || payload instanceof Uint8Array ? payload : encodeMessage(payload);
  const reply = await ctx.nc.request(ctx.subjects.node.cmd(node), data, { timeout: 5_000 });
  return reply.json<CommandAck>();
}

function endedOutcome(events: readonly Stored[], rank = 0): TaskEnded["outcome"] {
  const ended = events.filter((e) => e.json.type === "task.ended" && e.json.rank === rank);
  expect(ended).toHaveLength(1);
  return ended[0]!.json.outcome;
}

function textOf(chunks: readonly Stored[], rank: number, stream: "stdout" | "stderr"): string {
  return Buffer.concat(
    chunks
      .map((c) => c.json as IoChunk)
      .filter((c) => c.rank === rank && c.stream === stream)
      .sort((a, b) => a.seq - b.seq)
      .map((c) => Buffer.from(c.data, c.encoding === "base64" ? "base64" : "utf8")),
  ).toString("utf8");
}

describe("agent", () => {
  it("runs tasks: exit code, real pid, MUSTER_* environment, output with eof, started before ended, idempotent launch", async () => {
    const ctx = await setup("exit3");
    const script = 'echo "$MUSTER_TASK_ID $MUSTER_NODE $MUSTER_JOB_ID $MUSTER_STEP_ID $MUSTER_LOCALID $MUSTER_NTASKS $MUSTER_NNODES $MUSTER_NODEID $FROM_CMD"; echo oops >&2; echo dev >/dev/stderr; command -v muster >/dev/null && echo has-muster; exit 3';
    const cmd = launchCmd(ctx, "j1", ["sh", "-c", script], {
      env: { FROM_CMD: "yes" },
      ntasks: 4,
      nnodes: 2,
      nodeIndex: 1,
      ranks: "2-3",
    });
    expect(await request(ctx, cmd)).toEqual({ type: "cmd.ack", v: 1, node: NODE, epoch: ctx.agent.epoch, ok: true });
    // The same launch again (a supervisor retry) is acknowledged and starts nothing.
    expect((await request(ctx, cmd)).ok).toBe(true);
    const events = await waitEnded(ctx, "j1", 2);

    for (const rank of [2, 3]) {
      const mine = events.filter((e) => e.json.rank === rank);
      expect(mine.map((e) => e.json.type)).toEqual(["task.started", "task.ended"]);
      const [started, ended] = mine as [Stored, Stored];
      expect(started.subject).toBe(ctx.subjects.evt.task(NODE, "j1", 0, rank));
      expect(started.msgId).toBe(taskEventMsgId("j1", 0, rank, ctx.agent.epoch, "started"));
      expect(ended.msgId).toBe(taskEventMsgId("j1", 0, rank, ctx.agent.epoch, "ended"));
      expect(started.json).toMatchObject({ node: NODE, epoch: ctx.agent.epoch, job: "j1", step: 0 });
      expect(started.json.pid).toBeGreaterThan(1);
      expect(ended.json.pid).toBe(started.json.pid);
      expect(ended.json.outcome).toEqual({ kind: "exited", code: 3 });
      expect(ended.json.at).toBeGreaterThanOrEqual(started.json.at);

      // `task.ended` does not wait for the output; each stream still ends with its eof chunk.
      const io = await waitFor(
        async () => {
          const mine = (await jobOutput(ctx, "j1")).filter((c) => c.json.rank === rank);
          return mine.filter((c) => c.json.eof).length === 2 ? mine : undefined;
        },
        { message: `both eof chunks of rank ${rank}` },
      );
      expect(textOf(io, rank, "stdout")).toBe(`${rank} ${NODE} j1 0 ${rank - 2} 4 2 1 yes\nhas-muster\n`);
      expect(textOf(io, rank, "stderr")).toBe("oops\ndev\n");
      for (const stream of ["stdout", "stderr"] as const) {
        const chunks = io.filter((c) => c.json.stream === stream);
        expect(chunks.map((c) => c.json.seq)).toEqual(chunks.map((_, i) => i));
        const eof = chunks.at(-1)!;
        expect(eof.json.eof).toBe(true);
      }
    }
    expect(ctx.agent.running()).toBe(0);
  });

  it("reports a task's end without waiting for its output: a background child holding stdout delays only the eof chunks", async () => {
    const ctx = await setup("heldpipe");
    // The background sleep keeps the task's stdout open after the task exited; the agent stops
    // reading it after the output grace (2 s), and only then sends the eof chunks.
    await request(ctx, launchCmd(ctx, "held", ["sh", "-c", "echo before; sleep 5 & exit 4"]));
    const [, ended] = await waitEnded(ctx, "held");
    expect(ended!.json.outcome).toEqual({ kind: "exited", code: 4 });
    const io = await waitFor(
      async () => {
        const chunks = await jobOutput(ctx, "held");
        return chunks.filter((c) => c.json.eof).length === 2 ? chunks : undefined;
      },
      { timeoutMs: 15_000, message: "both eof chunks" },
    );
    expect(textOf(io, 0, "stdout")).toBe("before\n");
    for (const eof of io.filter((c) => c.json.eof)) expect(ended!.ns).toBeLessThan(eof.ns);
    expect(ctx.agent.running()).toBe(0);
  });

  it("reports a SIGSEGV as signaled 11, with the core flag as the kernel set it", async () => {
    const ctx = await setup("segv");
    await request(ctx, launchCmd(ctx, "nocore", ["sh", "-c", "ulimit -c 0; kill -SEGV $$"]));
    expect(endedOutcome(await waitEnded(ctx, "nocore"))).toEqual({ kind: "signaled", signal: 11, coreDumped: false });

    // A core can be written when the pattern is a plain file name and the hard limit allows it.
    const pattern = readFileSync("/proc/sys/kernel/core_pattern", "utf8").trim();
    await request(ctx, launchCmd(ctx, "core", ["sh", "-c", "ulimit -c unlimited 2>/dev/null; kill -SEGV $$"]));
    const outcome = endedOutcome(await waitEnded(ctx, "core"));
    expect(outcome).toMatchObject({ kind: "signaled", signal: 11 });
    if (!pattern.startsWith("|") && !pattern.includes("/")) {
      expect(outcome).toEqual({ kind: "signaled", signal: 11, coreDumped: true });
      expect((await readdir(ctx.cwd)).some((f) => f.startsWith("core"))).toBe(true);
    }
  });

  it("reports launch failures: not found is 127, not executable is 126, with the OS text and no started event", async () => {
    const ctx = await setup("launchfail");
    const plain = join(ctx.cwd, "not-executable.sh");
    await writeFile(plain, "#!/bin/sh\necho hi\n");
    await chmod(plain, 0o644);
    await request(ctx, launchCmd(ctx, "nf", ["muster-no-such-command", "x"]));
    await request(ctx, launchCmd(ctx, "nx", [plain]));
    await request(ctx, launchCmd(ctx, "nd", ["true"], { cwd: join(ctx.cwd, "missing-dir") }));
    const nf = await waitEnded(ctx, "nf");
    expect(nf.map((e) => e.json.type)).toEqual(["task.ended"]);
    expect(nf[0]!.json.pid).toBeUndefined();
    expect(endedOutcome(nf)).toEqual({ kind: "launch_failed", code: 127, error: "muster-no-such-command: No such file or directory" });
    expect(endedOutcome(await waitEnded(ctx, "nx"))).toEqual({ kind: "launch_failed", code: 126, error: `${plain}: Permission denied` });
    expect(endedOutcome(await waitEnded(ctx, "nd"))).toEqual({
      kind: "launch_failed",
      code: 126,
      error: `cannot change directory to ${join(ctx.cwd, "missing-dir")}: No such file or directory`,
    });
  });

  it("delivers cmd.signal to the process group of the targeted ranks", async () => {
    const ctx = await setup("signal");
    const cmd = launchCmd(ctx, "s", ["sh", "-c", "sleep 600"], { ntasks: 2, ranks: "0-1" });
    await request(ctx, cmd);
    await waitFor(async () => (await jobEvents(ctx, "s")).filter((e) => e.json.type === "task.started").length === 2, { message: "both started" });
    expect(ctx.agent.running()).toBe(2);
    const signal = (ranks: string | undefined, sig: number): SignalCommand => ({
      type: "cmd.signal",
      v: PROTOCOL_VERSION,
      job: "s",
      step: 0,
      node: NODE,
      epoch: ctx.agent.epoch,
      signal: sig,
      ...(ranks === undefined ? {} : { ranks }),
    });
    expect((await request(ctx, signal("1", 15))).ok).toBe(true);
    const first = await waitEnded(ctx, "s", 1);
    expect(endedOutcome(first, 1)).toEqual({ kind: "signaled", signal: 15, coreDumped: false });
    expect(ctx.agent.running()).toBe(1);
    // Without ranks: every task of the step on this node (the sh and its sleep child both get it).
    expect((await request(ctx, signal(undefined, 10))).ok).toBe(true);
    expect(endedOutcome(await waitEnded(ctx, "s", 2), 0)).toEqual({ kind: "signaled", signal: 10, coreDumped: false });
  });

  it("launches ranks given as an id set: local ids are positions, and an overlapping repeat starts only the new ranks", async () => {
    const ctx = await setup("ranks");
    const argv = ["sh", "-c", 'echo "$MUSTER_TASK_ID $MUSTER_LOCALID"'];
    expect((await request(ctx, launchCmd(ctx, "rk", argv, { ntasks: 20, ranks: "3-4,10,12-13" }))).ok).toBe(true);
    await waitEnded(ctx, "rk", 5);
    expect((await request(ctx, launchCmd(ctx, "rk", argv, { ntasks: 20, ranks: "12-15" }))).ok).toBe(true);
    const events = await waitEnded(ctx, "rk", 7);
    const ended = events.filter((e) => e.json.type === "task.ended").map((e) => e.json.rank as number);
    expect(ended.sort((a, b) => a - b)).toEqual([3, 4, 10, 12, 13, 14, 15]);
    const io = await jobOutput(ctx, "rk");
    const localIds = Object.fromEntries(ended.map((r) => [r, textOf(io, r, "stdout")]));
    expect(localIds).toEqual({ 3: "3 0\n", 4: "4 1\n", 10: "10 2\n", 12: "12 3\n", 13: "13 4\n", 14: "14 2\n", 15: "15 3\n" });
    // Ranks outside the step are refused by the schema.
    expect(await request(ctx, launchCmd(ctx, "rk2", ["true"], { ntasks: 4, ranks: "2-4" }))).toMatchObject({ ok: false, error: { code: "BAD_SCHEMA" } });
  });

  it("acknowledges a launch before starting it, and a SIGKILL ends the tasks it has not handed to the launcher without starting them", async () => {
    const ctx = await setup("ackfirst");
    const server = launcherServerPid();
    // A stopped launcher starts nothing; the agent hands it a bounded number of requests.
    process.kill(server, "SIGSTOP");
    cleanups.push(async () => void process.kill(server, "SIGCONT"));
    const n = LAUNCHER_MAX_IN_FLIGHT + 8;
    const ack = await request(ctx, launchCmd(ctx, "af", ["sleep", "600"], { ntasks: n, ranks: `0-${n - 1}` }));
    expect(ack).toEqual({ type: "cmd.ack", v: 1, node: NODE, epoch: ctx.agent.epoch, ok: true });
    expect(ctx.agent.running()).toBe(n);
    const kill: SignalCommand = { type: "cmd.signal", v: PROTOCOL_VERSION, job: "af", step: 0, node: NODE, epoch: ctx.agent.epoch, signal: 9 };
    expect((await request(ctx, kill)).ok).toBe(true);
    // Not handed over: they end at once, never started. The others wait for the launcher.
    const early = await waitFor(
      async () => {
        const e = (await jobEvents(ctx, "af")).filter((x) => x.json.type === "task.ended");
        return e.length >= n - LAUNCHER_MAX_IN_FLIGHT ? e : undefined;
      },
      { message: "the unstarted tasks ended" },
    );
    expect((await jobEvents(ctx, "af")).some((e) => e.json.type === "task.started")).toBe(false);
    for (const e of early) {
      expect(e.json.outcome).toEqual({ kind: "signaled", signal: 9, coreDumped: false });
      expect(e.json.pid).toBeUndefined();
    }
    process.kill(server, "SIGCONT");
    const events = await waitEnded(ctx, "af", n);
    const started = new Set(events.filter((e) => e.json.type === "task.started").map((e) => e.json.rank as number));
    expect(started.size).toBeLessThanOrEqual(LAUNCHER_MAX_IN_FLIGHT);
    for (const e of events.filter((x) => x.json.type === "task.ended")) {
      expect(e.json.outcome).toEqual({ kind: "signaled", signal: 9, coreDumped: false });
      // The held SIGKILL reached the ones already at the launcher right after their exec.
      expect(e.json.pid === undefined).toBe(!started.has(e.json.rank));
    }
    expect(ctx.agent.running()).toBe(0);
  });

  it("recovers when its launcher is SIGKILLed mid-job: the running task and later ones report exact statuses", async () => {
    const ctx = await setup("launcherkill");
    const first = launcherServerPid();
    await request(ctx, launchCmd(ctx, "lk", ["sh", "-c", "sleep 1; exit 4"]));
    await waitFor(async () => (await jobEvents(ctx, "lk")).some((e) => e.json.type === "task.started"), { message: "started" });
    process.kill(first, "SIGKILL");
    await request(ctx, launchCmd(ctx, "lk2", ["sh", "-c", "kill -QUIT $$"]));
    await request(ctx, launchCmd(ctx, "lk3", ["muster-no-such-command"]));
    expect(endedOutcome(await waitEnded(ctx, "lk"))).toEqual({ kind: "exited", code: 4 });
    expect(endedOutcome(await waitEnded(ctx, "lk2"))).toMatchObject({ kind: "signaled", signal: 3 });
    expect(endedOutcome(await waitEnded(ctx, "lk3"))).toEqual({ kind: "launch_failed", code: 127, error: "muster-no-such-command: No such file or directory" });
    // And a new server took over.
    await waitFor(() => launcherServerPid() !== first, { message: "a new launcher server" });
  });

  it("forwards output in chunks of at most 64 KiB, utf8 or base64, seq from 0, eof on both streams", async () => {
    const ctx = await setup("io");
    const script = "head -c 150000 /dev/zero | tr '\\0' a; printf '\\303\\251\\377' >&2";
    await request(ctx, launchCmd(ctx, "io", ["sh", "-c", script]));
    const events = await waitEnded(ctx, "io");
    expect(endedOutcome(events)).toEqual({ kind: "exited", code: 0 });
    const io = await jobOutput(ctx, "io");
    const out = io.filter((c) => c.json.stream === "stdout").map((c) => c.json as IoChunk);
    expect(out.map((c) => c.seq)).toEqual(out.map((_, i) => i));
    for (const c of out) expect(Buffer.byteLength(c.data)).toBeLessThanOrEqual(64 * 1024);
    expect(out.at(-1)!.eof).toBe(true);
    expect(textOf(io, 0, "stdout")).toBe("a".repeat(150000));
    const err = io.filter((c) => c.json.stream === "stderr").map((c) => c.json as IoChunk);
    const bytes = Buffer.concat(err.map((c) => Buffer.from(c.data, c.encoding === "base64" ? "base64" : "utf8")));
    expect([...bytes]).toEqual([0xc3, 0xa9, 0xff]);
    expect(err.some((c) => c.encoding === "base64")).toBe(true);
    expect(err.at(-1)!.eof).toBe(true);
  });

  it("says hello once the NODES stream exists, retrying until then", async () => {
    const lines: string[] = [];
    const capture = pino({ level: "info" }, { write: (line: string) => void lines.push(line) });
    const ctx = await setup("nostream", { streams: false, logger: capture });
    const hello = ctx.subjects.node.hello(NODE);
    await waitFor(() => lines.some((l) => l.includes('"publish.retry"') && l.includes(hello)), { message: "a failed hello publish" });
    await ensureStreams(ctx.jsm, ctx.subjects, { replicas: 1, retentionSeconds: 3600 });
    const stored = await waitFor(() => lastBySubject(ctx.jsm, ctx.subjects.streams.nodes.name, hello), { message: "hello stored" });
    expect(stored.json).toMatchObject({ type: "hello", v: 1, node: NODE, epoch: ctx.agent.epoch, slots: 2, pid: process.pid });
    expect(ctx.agent.epoch).toMatch(/^[A-Za-z0-9_-]+$/);
    const hb = await waitFor(() => lastBySubject(ctx.jsm, ctx.subjects.streams.nodes.name, ctx.subjects.node.hb(NODE)), { message: "heartbeat" });
    expect(hb.json).toMatchObject({ type: "heartbeat", node: NODE, epoch: ctx.agent.epoch, running: 0 });
  });

  it("runs a batch step from the script text it was sent, writing its output to the named file", async () => {
    const ctx = await setup("batch");
    const content = "#!/bin/sh\necho batch $MUSTER_JOB_ID $MUSTER_STEP_ID\necho warn >&2\nexit 5\n";
    await request(ctx, launchCmd(ctx, "b1", ["job.sh", "arg1"], { step: "batch", batch: { script: "job.sh", content, output: "slurm.out" } }));
    const events = await waitEnded(ctx, "b1");
    expect(endedOutcome(events)).toEqual({ kind: "exited", code: 5 });
    expect(readFileSync(join(ctx.cwd, "slurm.out"), "utf8")).toBe("batch b1 batch\nwarn\n");
    const io = await jobOutput(ctx, "b1");
    expect(io.map((c) => [c.json.stream, c.json.seq, c.json.data, c.json.eof])).toEqual([
      ["stdout", 0, "", true],
      ["stderr", 0, "", true],
    ]);
  });

  it("refuses a command for another epoch with STALE_EPOCH and does nothing", async () => {
    const ctx = await setup("stale");
    const ack = await request(ctx, { ...launchCmd(ctx, "st", ["true"]), epoch: "someOldEpoch" });
    expect(ack).toMatchObject({ ok: false, epoch: ctx.agent.epoch, error: { code: "STALE_EPOCH" } });
    expect(ctx.agent.running()).toBe(0);
    // A later valid command still runs; the stale one never produced an event.
    await request(ctx, launchCmd(ctx, "ok", ["true"]));
    await waitEnded(ctx, "ok");
    expect(await jobEvents(ctx, "st")).toEqual([]);
  });

  it("answers garbage with an error ack and a dead letter, and keeps working", async () => {
    const ctx = await setup("garbage");
    const bad = await request(ctx, "this is not json {");
    expect(bad).toMatchObject({ ok: false, error: { code: "BAD_JSON" } });
    const wrong = await request(ctx, JSON.stringify({ type: "cmd.launch", v: 1, job: "x" }));
    expect(wrong).toMatchObject({ ok: false, error: { code: "BAD_SCHEMA" } });
    const dlq = await waitFor(async () => {
      const all = await readStream(ctx.jsm, ctx.subjects.streams.dlq.name);
      return all.length >= 2 ? all : undefined;
    });
    expect(dlq.map((d) => d.subject)).toEqual([ctx.subjects.dlq.of("agent"), ctx.subjects.dlq.of("agent")]);
    expect(dlq[0]!.json).toMatchObject({ type: "dlq", reason: "BAD_JSON", subject: ctx.subjects.node.cmd(NODE), payload: { encoding: "utf8", data: "this is not json {", truncated: false } });
    expect(dlq[1]!.json).toMatchObject({ reason: "BAD_SCHEMA" });
    await request(ctx, launchCmd(ctx, "after", ["true"]));
    expect(endedOutcome(await waitEnded(ctx, "after"))).toEqual({ kind: "exited", code: 0 });
  });

  it("loses no event across a NATS crash: task.ended is stored exactly once after the restart", async () => {
    const ctx = await setup("restart");
    await request(ctx, launchCmd(ctx, "r", ["sh", "-c", "sleep 1; exit 4"]));
    await waitFor(async () => (await jobEvents(ctx, "r")).some((e) => e.json.type === "task.started"), { message: "started stored" });
    await server.kill("SIGKILL");
    await waitFor(() => ctx.agent.running() === 0, { timeoutMs: 10_000, message: "task ended while NATS was down" });
    await server.restart();
    const events = await waitEnded(ctx, "r", 1, NODE, 20_000);
    expect(endedOutcome(events)).toEqual({ kind: "exited", code: 4 });
    // draining is queued behind the event: once it is stored, no retry of the event is left anywhere.
    await ctx.agent.shutdown();
    const again = await jobEvents(ctx, "r");
    expect(again.map((e) => e.json.type)).toEqual(["task.started", "task.ended"]);
    const io = await jobOutput(ctx, "r");
    expect(io.map((c) => [c.json.stream, c.json.eof])).toEqual([
      ["stdout", true],
      ["stderr", true],
    ]);
  });

  it("shuts down gracefully: draining, the task's ended (SIGTERM), then bye", async () => {
    const ctx = await setup("shutdown");
    await request(ctx, launchCmd(ctx, "sd", ["sleep", "600"]));
    await waitFor(async () => (await jobEvents(ctx, "sd")).some((e) => e.json.type === "task.started"));
    await ctx.agent.shutdown();
    expect(ctx.agent.running()).toBe(0);
    await expectShutdownOrder(ctx, NODE, ctx.agent.epoch, "sd", "shutdown");
    const ack = await ctx.nc.request(ctx.subjects.node.cmd(NODE), encodeMessage(launchCmd(ctx, "late", ["true"])), { timeout: 500 }).catch((e: Error) => e);
    expect(ack).toBeInstanceOf(Error); // nobody listens after bye
  });

  it("as a process started with SIGINT ignored: a task's kill -INT is signal 2; SIGTERM drains and says bye", async () => {
    const ctx = await setup("process", { start: false });
    const node = "n2";
    const agent = startAgentProcess(ctx, `await runAgent(["--node", "${node}", "--slots", "3"])`);
    const hello = await waitFor(() => lastBySubject(ctx.jsm, ctx.subjects.streams.nodes.name, ctx.subjects.node.hello(node)), { timeoutMs: 20_000, message: "hello of the agent process" });
    expect(hello.json).toMatchObject({ type: "hello", node, slots: 3, pid: agent.child.pid });
    const epoch: string = hello.json.epoch;
    const cmd = (job: string, argv: string[]): LaunchCommand => ({ ...launchCmd(ctx, job, argv), node, epoch });

    expect((await request(ctx, cmd("int", ["sh", "-c", "kill -INT $$; echo survived"]), node)).ok).toBe(true);
    const intEvents = await waitEnded(ctx, "int", 1, node);
    expect(endedOutcome(intEvents)).toEqual({ kind: "signaled", signal: 2, coreDumped: false });

    await request(ctx, cmd("term", ["sleep", "600"]), node);
    await waitFor(async () => (await jobEvents(ctx, "term", node)).some((e) => e.json.type === "task.started"));
    agent.child.kill("SIGTERM");
    expect(await agent.exited).toBe(0);
    await expectShutdownOrder(ctx, node, epoch, "term", "shutdown");
  });

  it("on an uncaught exception says bye (fatal), kills its tasks and exits non-zero", async () => {
    const ctx = await setup("fatal", { start: false });
    const node = "n3";
    const agent = startAgentProcess(
      ctx,
      `await runAgent({ node: "${node}", onStarted: () => { process.once("SIGUSR2", () => { throw new Error("boom"); }); } })`,
    );
    const hello = await waitFor(() => lastBySubject(ctx.jsm, ctx.subjects.streams.nodes.name, ctx.subjects.node.hello(node)), { timeoutMs: 20_000, message: "hello" });
    await request(ctx, { ...launchCmd(ctx, "f", ["sleep", "600"]), node, epoch: hello.json.epoch }, node);
    const started = await waitFor(async () => (await jobEvents(ctx, "f", node)).find((e) => e.json.type === "task.started"));
    agent.child.kill("SIGUSR2");
    expect(await agent.exited).toBe(1);
    const bye = await lastBySubject(ctx.jsm, ctx.subjects.streams.nodes.name, ctx.subjects.node.bye(node));
    expect(bye?.json).toMatchObject({ type: "bye", node, epoch: hello.json.epoch, reason: "fatal", detail: "boom" });
    await waitFor(() => !processExists(started.json.pid as number), { message: "the task was killed" });
  });
});

/** The pid of the launcher server of the agent running in this process. */
function launcherServerPid(): number {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8");
      if (ppid === process.pid && cmdline.startsWith("muster-launcher") && !cmdline.startsWith("muster-launcher-watch") && processExists(Number(name))) found.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  if (found.length !== 1) throw new Error(`expected one launcher server under pid ${process.pid}, found ${found.join(",") || "none"}`);
  return found[0]!;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs `runAgent` in a separate node process (from source via tsx) whose parent shell ignores SIGINT. */
function startAgentProcess(ctx: Ctx, call: string): { child: ChildProcess; exited: Promise<number | null> } {
  const main = JSON.stringify(join(repoRoot, "services/agent/main.ts"));
  const code = `const { runAgent } = await import(${main}); process.exitCode = ${call};`;
  const child = spawn("sh", ["-c", `trap '' INT; exec "${process.execPath}" --import tsx --input-type=module -e "$0"`, code], {
    cwd: repoRoot,
    env: { ...process.env, ...settings(ctx.prefix), MUSTER_LOG_LEVEL: process.env.MUSTER_TEST_LOG ?? "silent" },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const exited = new Promise<number | null>((resolveExit) => child.once("exit", (c) => resolveExit(c)));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
  });
  return { child, exited };
}

async function expectShutdownOrder(ctx: Ctx, node: string, epoch: string, job: string, reason: string): Promise<void> {
  const nodes = ctx.subjects.streams.nodes.name;
  const draining = await lastBySubject(ctx.jsm, nodes, ctx.subjects.node.draining(node));
  const bye = await lastBySubject(ctx.jsm, nodes, ctx.subjects.node.bye(node));
  const events = await jobEvents(ctx, job, node);
  expect(draining?.json).toMatchObject({ type: "draining", node, epoch });
  expect(bye?.json).toMatchObject({ type: "bye", node, epoch, reason });
  const ended = events.find((e) => e.json.type === "task.ended")!;
  expect(ended.json.outcome).toEqual({ kind: "signaled", signal: 15, coreDumped: false });
  expect(draining!.ns).toBeLessThan(ended.ns);
  expect(ended.ns).toBeLessThan(bye!.ns);
}

/**
 * Bad input end to end: garbage on every subject muster listens on (control requests, node
 * messages, agent commands, task events) is answered with a stable error code or dead-lettered,
 * never changes state, never creates a job and never takes a service down.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, type Cluster } from "../support/cluster.js";
import { startNatsServer } from "../support/nats-fixture.js";
import { waitFor } from "../support/wait.js";

/** muster's own limit (NATS's default max_payload). */
const MUSTER_MAX = 1024 * 1024;
/** The test server allows 2 MiB, so a payload between the two limits reaches muster. */
const OVERSIZE = MUSTER_MAX + 512 * 1024;
const USER = "alice";

let c: Cluster;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let confDir: string;
let p: string;
/** node → epoch before any garbage was sent. */
let epochsBefore: Record<string, string | undefined>;
let jobsBefore: string[];

interface Reply {
  type: string;
  v: number;
  ok: boolean;
  error?: { code: string; message: string };
  data?: unknown;
}

interface NodeRow {
  node: string;
  state: string;
  epoch?: string;
}

interface Dlq {
  subject: string;
  record: { type: string; subject: string; reason: string; message: string; payload: { size: number; truncated: boolean; encoding: string; data: string } };
}

beforeAll(async () => {
  confDir = await mkdtemp(join(tmpdir(), "muster-bad-input-"));
  const conf = join(confDir, "nats.conf");
  await writeFile(conf, "max_payload: 2MB\n");
  c = await startCluster({ agents: 3, slots: 2, nats: { args: ["-c", conf] } });
  p = c.prefix;
  nc = await connect({ servers: c.nats.url });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  expect(nc.info?.max_payload).toBeGreaterThan(OVERSIZE);
  epochsBefore = Object.fromEntries((await nodes()).map((n) => [n.node, n.epoch]));
  jobsBefore = await allJobIds();
}, 60_000);

afterAll(async () => {
  await nc?.close();
  await c?.stop();
  if (confDir) await rm(confDir, { recursive: true, force: true });
});

const enc = new TextEncoder();
const bytes = (x: string | Uint8Array | object): Uint8Array => (x instanceof Uint8Array ? x : enc.encode(typeof x === "string" ? x : JSON.stringify(x)));
/** Random bytes that are certainly not UTF-8. */
const noise = (n = 64): Uint8Array => Uint8Array.from([0xff, 0xfe, ...randomBytes(n)]);
/** A JSON document of `size` bytes: valid JSON, far too big. */
const huge = (size: number): Uint8Array => bytes(`{"type":"submit","v":1,"pad":"${"x".repeat(size - 32)}"}`);

async function ctl(op: string, payload: string | Uint8Array | object, user = USER): Promise<Reply> {
  const m = await nc.request(`${p}.ctl.${user}.${op}`, bytes(payload), { timeout: 10_000 });
  return m.json<Reply>();
}

/** Asserts an error reply with `code` and a non-empty message. */
function expectError(r: Reply, code: string, text?: RegExp): void {
  expect(r).toMatchObject({ type: "reply", v: 1, ok: false, error: { code } });
  expect(r.error!.message.trim().length, JSON.stringify(r)).toBeGreaterThan(0);
  if (text) expect(r.error!.message).toMatch(text);
}

async function nodes(): Promise<NodeRow[]> {
  const r = await c.muster(["nodes", "--json"], { timeoutMs: 15_000 });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as NodeRow[];
}

async function allJobIds(): Promise<string[]> {
  const ids: string[] = [];
  for (const what of ["jobs", "history"]) {
    const r = await ctl("query", { type: "query", v: 1, what });
    expect(r.ok, JSON.stringify(r)).toBe(true);
    ids.push(...(r.data as { jobId: string }[]).map((j) => j.jobId));
  }
  return ids.sort();
}

async function readDlq(): Promise<Dlq[]> {
  const name = `${p.toUpperCase()}_DLQ`;
  const info = await jsm.streams.info(name);
  const out: Dlq[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(name, { seq }).catch(() => undefined);
    if (m) out.push({ subject: m.subject, record: m.json() });
  }
  return out;
}

/** Waits until the DLQ holds a record for `subject` with each of `reasons` (as a multiset). */
async function expectDlq(subject: string, reasons: string[]): Promise<Dlq[]> {
  const want = [...reasons].sort();
  let last: string[] = [];
  try {
    return await waitFor(
      async () => {
        const recs = (await readDlq()).filter((d) => d.record.subject === subject);
        last = recs.map((d) => d.record.reason).sort();
        const left = [...last];
        for (const r of want) {
          const i = left.indexOf(r);
          if (i < 0) return undefined;
          left.splice(i, 1);
        }
        return recs;
      },
      { timeoutMs: 15_000, intervalMs: 100 },
    );
  } catch (err) {
    throw new Error(`DLQ for ${subject}: want ${want.join(",")}, have ${last.join(",")}`, { cause: err });
  }
}

const OPS = ["submit", "kill", "signal", "query"] as const;

/** A valid request of each op (for the wrong-`v` cases). */
const VALID: Record<(typeof OPS)[number], object> = {
  submit: { type: "submit", v: 1, user: USER, argv: ["true"], ntasks: 1, label: false, killOnBadExit: false },
  kill: { type: "kill", v: 1, job: "424242" },
  signal: { type: "signal", v: 1, job: "424242", signal: 10 },
  query: { type: "query", v: 1, what: "jobs" },
};

describe("bad control requests", () => {
  for (const op of OPS) {
    it(`${op}: random bytes, bad JSON, wrong shapes, wrong v and oversize get BAD_JSON / BAD_SCHEMA / PAYLOAD_TOO_LARGE`, async () => {
      const subject = `${p}.ctl.${USER}.${op}`;
      expectError(await ctl(op, noise()), "BAD_JSON", new RegExp(subject.replaceAll(".", "\\.")));
      expectError(await ctl(op, new Uint8Array()), "BAD_JSON");
      expectError(await ctl(op, '{"type":"' + op + '","v":1,'), "BAD_JSON");
      expectError(await ctl(op, "[1,2,3]"), "BAD_SCHEMA");
      expectError(await ctl(op, "null"), "BAD_SCHEMA");
      expectError(await ctl(op, '"submit"'), "BAD_SCHEMA");
      expectError(await ctl(op, { type: op, v: 1 }), "BAD_SCHEMA");
      expectError(await ctl(op, { hello: "world" }), "BAD_SCHEMA");
      expectError(await ctl(op, { ...VALID[op], v: 2 }), "BAD_SCHEMA", /unsupported protocol version/);
      expectError(await ctl(op, { ...VALID[op], v: "1" }), "BAD_SCHEMA");
      const big = await ctl(op, huge(OVERSIZE));
      expectError(big, "PAYLOAD_TOO_LARGE", new RegExp(`${OVERSIZE}`));
      const recs = await expectDlq(subject, ["BAD_JSON", "BAD_JSON", "BAD_JSON", "BAD_SCHEMA", "BAD_SCHEMA", "BAD_SCHEMA", "BAD_SCHEMA", "BAD_SCHEMA", "BAD_SCHEMA", "BAD_SCHEMA", "PAYLOAD_TOO_LARGE"]);
      const bigRec = recs.find((d) => d.record.reason === "PAYLOAD_TOO_LARGE")!;
      expect(bigRec.subject.startsWith(`${p}.dlq.`)).toBe(true);
      expect(bigRec.record.payload).toMatchObject({ size: OVERSIZE, truncated: true });
      expect(recs.find((d) => d.record.reason === "BAD_JSON")!.record.message).toMatch(/\S/);
    });
  }

  it("a request of one op on another op's subject is refused", async () => {
    expectError(await ctl("kill", VALID.query), "BAD_REQUEST", /query/);
    expectError(await ctl("query", VALID.submit), "BAD_REQUEST", /submit/);
  });

  it("kill, signal and query of an unknown job get UNKNOWN_JOB", async () => {
    expectError(await ctl("kill", { type: "kill", v: 1, job: "999999" }), "UNKNOWN_JOB", /999999/);
    expectError(await ctl("kill", { type: "kill", v: 1, job: "999999", step: 0, signal: 9 }), "UNKNOWN_JOB");
    expectError(await ctl("signal", { type: "signal", v: 1, job: "999999", signal: 10 }), "UNKNOWN_JOB");
    expectError(await ctl("query", { type: "query", v: 1, what: "job", job: "999999" }), "UNKNOWN_JOB");
  });

  it("ids that are not subject tokens, bad signals and bad numbers are BAD_SCHEMA", async () => {
    expectError(await ctl("kill", { type: "kill", v: 1, job: "a.b" }), "BAD_SCHEMA");
    expectError(await ctl("kill", { type: "kill", v: 1, job: "*" }), "BAD_SCHEMA");
    expectError(await ctl("kill", { type: "kill", v: 1, job: "1", signal: 65 }), "BAD_SCHEMA");
    expectError(await ctl("signal", { type: "signal", v: 1, job: "1", signal: 0 }), "BAD_SCHEMA");
    expectError(await ctl("query", { type: "query", v: 1, what: "job" }), "BAD_SCHEMA", /job/);
    expectError(await ctl("query", { type: "query", v: 1, what: "everything" }), "BAD_SCHEMA");
    expectError(await ctl("submit", { ...VALID.submit, ntasks: 0 }), "BAD_SCHEMA", /ntasks/);
    expectError(await ctl("submit", { ...VALID.submit, ntasks: 1.5 }), "BAD_SCHEMA", /ntasks/);
    expectError(await ctl("submit", { ...VALID.submit, argv: [] }), "BAD_SCHEMA", /argv/);
    expectError(await ctl("submit", { ...VALID.submit, argv: [""] }), "BAD_SCHEMA", /argv/);
    expectError(await ctl("submit", { ...VALID.submit, argv: ["a\0b"] }), "BAD_SCHEMA", /argv/);
    expectError(await ctl("submit", { ...VALID.submit, env: { "A=B": "x" } }), "BAD_SCHEMA", /env/);
  });

  it("a submit whose user differs from the subject's user is FORBIDDEN", async () => {
    expectError(await ctl("submit", { ...VALID.submit, user: "mallory" }), "FORBIDDEN", /mallory/);
    expectError(await ctl("submit", { ...VALID.submit, user: USER }, "mallory"), "FORBIDDEN", /mallory/);
  });

  it("a subject that is not a control operation is refused", async () => {
    expectError(await ctl("bogus", VALID.query), "BAD_REQUEST", /bogus/);
  });

  it("the server itself refuses more than its max_payload (muster's limit equals NATS's default)", async () => {
    const srv = await startNatsServer({ jetstream: false });
    const other = await connect({ servers: srv.url });
    try {
      expect(other.info?.max_payload).toBe(MUSTER_MAX);
      expect(() => other.publish(`${p}.ctl.${USER}.submit`, huge(MUSTER_MAX + 1))).toThrow(/max_payload|MAX_PAYLOAD|exceeded/i);
    } finally {
      await other.close();
      await srv.cleanup();
    }
  });
});

describe("bad node messages", () => {
  const CHANNELS = ["hello", "hb", "draining", "bye"] as const;
  const validBody = (channel: (typeof CHANNELS)[number], node: string): Record<string, unknown> => {
    const base = { v: 1, node, epoch: "garbageepoch", at: Date.now() };
    switch (channel) {
      case "hello":
        return { ...base, type: "hello", slots: 4, pid: 1, hostname: "evil", version: "0.0.0" };
      case "hb":
        return { ...base, type: "heartbeat", seq: 0, running: 0 };
      case "draining":
        return { ...base, type: "draining" };
      case "bye":
        return { ...base, type: "bye", reason: "shutdown" };
    }
  };

  for (const channel of CHANNELS) {
    it(`${channel}: garbage is dead-lettered and node-1 stays online`, async () => {
      const subject = `${p}.node.node-1.${channel}`;
      nc.publish(subject, noise());
      nc.publish(subject, bytes("{not json"));
      nc.publish(subject, bytes({ type: channel }));
      nc.publish(subject, bytes([]));
      nc.publish(subject, bytes({ ...validBody(channel, "node-1"), v: 2 }));
      nc.publish(subject, huge(OVERSIZE));
      await nc.flush();
      const recs = await expectDlq(subject, ["BAD_JSON", "BAD_JSON", "BAD_SCHEMA", "BAD_SCHEMA", "BAD_SCHEMA", "PAYLOAD_TOO_LARGE"]);
      expect(recs.find((d) => d.record.reason === "BAD_SCHEMA" && /version/.test(d.record.message))).toBeDefined();
    });
  }

  it("a hello (or any node message) for node-2 sent on node-1's subject is refused: FORBIDDEN", async () => {
    for (const channel of CHANNELS) nc.publish(`${p}.node.node-1.${channel}`, bytes(validBody(channel, "node-2")));
    await nc.flush();
    for (const channel of CHANNELS) {
      const recs = await expectDlq(`${p}.node.node-1.${channel}`, ["FORBIDDEN"]);
      expect(recs.find((d) => d.record.reason === "FORBIDDEN")!.record.message).toMatch(/node-2/);
    }
  });
});

describe("bad agent commands", () => {
  interface Ack {
    type: string;
    node: string;
    ok: boolean;
    error?: { code: string; message: string };
  }
  const cmd = async (payload: string | Uint8Array | object, node = "node-1"): Promise<Ack> =>
    (await nc.request(`${p}.node.${node}.cmd`, bytes(payload), { timeout: 10_000 })).json<Ack>();
  const expectNack = (a: Ack, code: string, text?: RegExp) => {
    expect(a).toMatchObject({ type: "cmd.ack", node: "node-1", ok: false, error: { code } });
    expect(a.error!.message).toMatch(/\S/);
    if (text) expect(a.error!.message).toMatch(text);
  };

  it("garbage on node-1's command subject gets an error ack and is dead-lettered", async () => {
    const subject = `${p}.node.node-1.cmd`;
    const signal = { type: "cmd.signal", v: 1, job: "1", step: 0, node: "node-1", epoch: epochsBefore["node-1"], signal: 15 };
    expectNack(await cmd(noise()), "BAD_JSON");
    expectNack(await cmd("{]"), "BAD_JSON");
    expectNack(await cmd({ type: "cmd.launch", v: 1 }), "BAD_SCHEMA");
    expectNack(await cmd({ type: "cmd.nope", v: 1 }), "BAD_SCHEMA");
    expectNack(await cmd({ ...signal, v: 2 }), "BAD_SCHEMA", /unsupported protocol version/);
    expectNack(await cmd({ ...signal, ranks: "3-" }), "BAD_SCHEMA");
    expectNack(await cmd(huge(OVERSIZE)), "PAYLOAD_TOO_LARGE");
    expectNack(await cmd({ ...signal, node: "node-2", epoch: epochsBefore["node-2"] }), "FORBIDDEN", /node-2/);
    expectNack(await cmd({ ...signal, epoch: "notmyepoch" }), "STALE_EPOCH");
    await expectDlq(subject, ["BAD_JSON", "BAD_JSON", "BAD_SCHEMA", "BAD_SCHEMA", "BAD_SCHEMA", "BAD_SCHEMA", "PAYLOAD_TOO_LARGE", "FORBIDDEN"]);
  });
});

describe("bad task events", () => {
  const subject = () => `${p}.evt.node-1.999.0.0`;
  const started = (over: Record<string, unknown> = {}) => ({
    type: "task.started",
    v: 1,
    job: "999",
    step: 0,
    rank: 0,
    node: "node-1",
    epoch: epochsBefore["node-1"],
    pid: 4242,
    at: Date.now(),
    ...over,
  });

  it("garbage, wrong shapes, unknown jobs and subject/body mismatches are dead-lettered, never retried forever", async () => {
    await js.publish(subject(), noise());
    await js.publish(subject(), bytes("{{{"));
    await js.publish(subject(), bytes({ type: "task.started", v: 1 }));
    await js.publish(subject(), bytes({ type: "task.exploded", v: 1, job: "999" }));
    await js.publish(subject(), bytes(started({ v: 7 })));
    await js.publish(subject(), bytes({ ...started(), type: "task.ended", outcome: { kind: "node_lost" } }));
    // The EVENTS stream stores at most muster's limit: JetStream itself refuses a bigger event.
    await expect(js.publish(subject(), huge(OVERSIZE))).rejects.toThrow(/size|maximum/i);
    await js.publish(subject(), bytes(started()));
    await js.publish(subject(), bytes(started({ node: "node-2" })));
    await js.publish(subject(), bytes(started({ job: "998" })));
    await js.publish(subject(), bytes(started({ rank: 1 })));
    await js.publish(subject(), bytes(started({ step: 1 })));
    // A subject whose step/rank tokens are not numbers.
    await js.publish(`${p}.evt.node-1.999.x.y`, bytes(started()));
    const recs = await expectDlq(subject(), [
      "BAD_JSON",
      "BAD_JSON",
      "BAD_SCHEMA",
      "BAD_SCHEMA",
      "BAD_SCHEMA",
      "BAD_SCHEMA",
      "UNKNOWN_JOB",
      "FORBIDDEN",
      "FORBIDDEN",
      "FORBIDDEN",
      "FORBIDDEN",
    ]);
    expect(recs.find((d) => d.record.reason === "UNKNOWN_JOB")!.record.message).toMatch(/999/);
    await expectDlq(`${p}.evt.node-1.999.x.y`, ["BAD_REQUEST"]);
    // Each rejected event was terminated: nothing is left pending or redelivered on the supervisor's consumer.
    await waitFor(
      async () => {
        const ci = await jsm.consumers.info(`${p.toUpperCase()}_EVENTS`, "supervisor");
        return ci.num_pending === 0 && ci.num_ack_pending === 0;
      },
      { timeoutMs: 10_000, intervalMs: 100, message: "supervisor consumer drained" },
    );
  });
});

describe("after all that garbage", () => {
  it("the supervisor and every agent are alive, the nodes unchanged, and no job was created", async () => {
    expect(c.supervisor.exitCode).toBeNull();
    expect(c.supervisor.signalCode).toBeNull();
    for (const [name, a] of c.agents) expect([name, a.exitCode, a.signalCode]).toEqual([name, null, null]);
    const after = await nodes();
    expect(after.map((n) => [n.node, n.state, n.epoch]).sort()).toEqual(Object.entries(epochsBefore).map(([n, e]) => [n, "online", e]).sort());
    expect(await allJobIds()).toEqual(jobsBefore);
    // Nothing the services did was a crash or a bug.
    expect(c.logs("supervisor")).not.toMatch(/serial_failed|ctl\.failed|"level":(50|60)/);
    for (const name of c.agents.keys()) expect(c.logs(name)).not.toMatch(/cmd\.failed|"level":(50|60)/);
  });

  it("a job runs correctly afterwards: exit 2, FAILED 2:0, and it is the only new job", async () => {
    const r = await c.muster(["run", "-v", "-n", "3", "--", "sh", "-c", "exit $MUSTER_TASK_ID"]);
    expect(r.code, r.stderr).toBe(2);
    const job = /muster: job (\S+):/.exec(r.stderr)![1]!;
    const view = await c.showJob(job);
    expect([view.state, view.reason, view.exitCode]).toEqual(["FAILED", "NonZeroExitCode", "2:0"]);
    expect(view.steps[0].tasks.map((t: { exitCode: string }) => t.exitCode)).toEqual(["0:0", "1:0", "2:0"]);
    expect(await allJobIds()).toEqual([...jobsBefore, job].sort());
    // Another user's job: refused; a finished job cannot be signalled; an unknown step is named.
    expectError(await ctl("kill", { type: "kill", v: 1, job }, "mallory"), "FORBIDDEN", /alice/);
    expectError(await ctl("query", { type: "query", v: 1, what: "job", job }, "mallory"), "FORBIDDEN");
    expectError(await ctl("signal", { type: "signal", v: 1, job, signal: 10 }), "NOT_RUNNING");
    expectError(await ctl("kill", { type: "kill", v: 1, job, step: 7 }), "UNKNOWN_STEP", /7/);
    expect(c.supervisor.exitCode).toBeNull();
  });
});

import { outcomeKey as outcomeGroupKey } from "../../src/exit-status/index.js";
import { describe, expect, expectTypeOf, it } from "vitest";
import type { z } from "zod";
import type { TaskOutcome } from "../../src/exit-status/outcome.js";
import {
  AgentTaskOutcomeSchema,
  CommandAckSchema,
  ControlRequestSchema,
  DLQ_PAYLOAD_LIMIT,
  MAX_PAYLOAD_BYTES,
  MESSAGE_SCHEMAS,
  ProtocolError,
  ReplySchema,
  StepExitCodesMessageSchema,
  SubjectTokenError,
  SubmitReplyDataSchema,
  TaskOutcomeSchema,
  createDlqRecord,
  createSubjects,
  encodeMessage,
  errReply,
  okReply,
  parseMessage,
  replySchemaOf,
} from "../../src/protocol/index.js";
import type { Message, MessageType } from "../../src/protocol/index.js";

const AT = 1_700_000_000_000;
const enc = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

/** One valid example per message type. */
const EXAMPLES: { [K in MessageType]: z.infer<(typeof MESSAGE_SCHEMAS)[K]> } = {
  submit: {
    type: "submit", v: 1, user: "alice", name: "train", argv: ["python", "train.py"], env: { OMP_NUM_THREADS: "4" },
    cwd: "/home/alice", ntasks: 8, nodes: 2, ntasksPerNode: 4, label: true, killOnBadExit: true, waitSeconds: 30,
    timeLimitSeconds: 3600, killWaitSeconds: 10,
  },
  kill: { type: "kill", v: 1, job: "j42", step: 0, signal: 9, killWaitSeconds: 5 },
  signal: { type: "signal", v: 1, job: "j42", step: "batch", signal: 10 },
  query: { type: "query", v: 1, what: "jobs", filters: { user: "alice", states: ["RUNNING"], limit: 10 } },
  reply: { type: "reply", v: 1, ok: true, data: { job: "j42", step: 0 } },
  "cmd.launch": {
    type: "cmd.launch", v: 1, job: "j42", step: 0, node: "node-1", epoch: "e1", user: "alice", argv: ["hostname"],
    env: { A: "1" }, cwd: "/tmp", ntasks: 4, nnodes: 2, nodeIndex: 0, ranks: "0-1",
    label: false, killWaitSeconds: 10,
  },
  "cmd.signal": { type: "cmd.signal", v: 1, job: "j42", step: 0, node: "node-1", epoch: "e1", ranks: "0-1", signal: 15 },
  "cmd.fence": { type: "cmd.fence", v: 1, node: "node-1", epoch: "e1", reason: "NotResponding" },
  "cmd.ping": { type: "cmd.ping", v: 1, node: "node-1" },
  "cmd.ack": { type: "cmd.ack", v: 1, node: "node-1", epoch: "e1", ok: true },
  "task.started": { type: "task.started", v: 1, job: "j42", step: 0, rank: 3, node: "node-1", epoch: "e1", pid: 4242, at: AT },
  "task.ended": {
    type: "task.ended", v: 1, job: "j42", step: 0, rank: 3, node: "node-1", epoch: "e1", pid: 4242, at: AT + 5,
    outcome: { kind: "signaled", signal: 11, coreDumped: true },
  },
  hello: { type: "hello", v: 1, node: "node-1", epoch: "e1", slots: 8, pid: 100, hostname: "n1.example.org", version: "0.1.0", at: AT },
  heartbeat: { type: "heartbeat", v: 1, node: "node-1", epoch: "e1", seq: 0, at: AT, running: 3 },
  bye: { type: "bye", v: 1, node: "node-1", epoch: "e1", reason: "shutdown", at: AT },
  draining: { type: "draining", v: 1, node: "node-1", epoch: "e1", at: AT },
  "job.state": { type: "job.state", v: 1, job: "j42", state: "FAILED", reason: "RaisedSignal:11(Segmentation_fault)", exitCode: "0:11", derivedExitCode: "0:11", at: AT },
  "step.first_failure": {
    type: "step.first_failure", v: 1, job: "j42", step: 0,
    trigger: { rank: 3, node: "node-1", outcome: { kind: "exited", code: 1 }, at: AT },
    publishedAt: AT + 1, ntasks: 16,
    groups: { "exited:0": "0-2,4-9", "exited:1": "3", running: "10-15" },
    killedByRuntime: "", nodes: { "node-1": "0-7", "node-2": "8-15" },
  },
  "step.summary": {
    type: "step.summary", v: 1, job: "j42", step: 0,
    trigger: { rank: 3, node: "node-1", outcome: { kind: "exited", code: 1 }, at: AT },
    publishedAt: AT + 9, ntasks: 16,
    groups: { "exited:0": "0-2,4-9", "exited:1": "3", "signaled:15": "10-15" },
    killedByRuntime: "10-15", nodes: { "node-1": "0-7", "node-2": "8-15" },
    state: "FAILED", reason: "NonZeroExitCode", exitCode: "1:0",
  },
  dlq: {
    type: "dlq", v: 1, subject: "muster.evt.node-1.j42.0.3", reason: "BAD_JSON", message: "not JSON", receivedAt: AT,
    payload: { encoding: "utf8", data: "{oops", size: 5, truncated: false },
  },
  "io.chunk": { type: "io.chunk", v: 1, job: "j42", step: 0, rank: 3, stream: "stdout", seq: 7, data: "hello\n", at: AT },
};

/** Per type: shapes that must be rejected beyond the generic missing-v / wrong-type cases. */
const BAD: { [K in MessageType]: Record<string, unknown>[] } = {
  submit: [{ argv: [] }, { argv: [""] }, { argv: ["a\0b"] }, { ntasks: 0 }, { user: "a.b" }, { label: "yes" }, { env: { "A=B": "x" } },
    { parentJob: "j1", batch: { script: "s.sh" } }],
  kill: [{ job: "*" }, { signal: 0 }, { signal: 65 }, { step: -1 }, { step: "batchy" }],
  signal: [{ signal: undefined }, { job: ">" }],
  query: [{ what: "everything" }, { what: "job" }, { filters: { limit: 0 } }],
  reply: [{ ok: false }, { ok: false, error: { code: "NOPE", message: "x" } }, { ok: "true" }],
  "cmd.launch": [{ ranks: "" }, { ranks: "-1" }, { ranks: "0-1,x" }, { ranks: "3-1" }, { ranks: "2-4" }, { ranks: "99999999999999999999" }, { ranks: [0, 1] },
    { epoch: "" }, { nnodes: 0 }],
  "cmd.signal": [{ ranks: "1-" }, { signal: 1.5 }],
  "cmd.fence": [{ epoch: "" }, { reason: "" }],
  "cmd.ping": [{ node: "" }],
  "cmd.ack": [{ ok: false }, { node: "a b" }],
  "task.started": [{ pid: 0 }, { at: "2024-01-01T00:00:00Z" }, { at: 1.5 }],
  "task.ended": [{ outcome: { kind: "node_lost" } }, { outcome: { kind: "exited", code: 256 } }, { outcome: { kind: "exited", code: 137, signal: 9 }, rank: "3" },
    { outcome: { kind: "launch_failed", code: 1, error: "x" } }, { outcome: { kind: "signaled", signal: 9 } }],
  hello: [{ slots: 0 }, { hostname: "" }],
  heartbeat: [{ seq: -1 }, { running: -1 }],
  bye: [{ reason: "bored" }],
  draining: [{ at: -1 }],
  "job.state": [{ state: "DONE" }, { exitCode: "137" }, { exitCode: "0:65" }, { exitCode: "256:0" }],
  "step.first_failure": [{ groups: { "exited:256": "1" } }, { groups: { bogus: "1" } }, { groups: { "exited:1": "" } }, { nodes: { "a.b": "1" } },
    { killedByRuntime: "x" }, { trigger: { rank: 0, node: "n", at: AT } }, { killedByRuntime: undefined }, { groups: undefined },
    { counts: { groups: { "exited:0": 16 }, killedByRuntime: 0 } }],
  "step.summary": [{ groups: { running: "0-15" } }, { state: "RUNNING" }, { exitCode: "1" }, { killedByRuntime: undefined },
    { packed: { keys: ["exited:0"], bits: 1, data: "eJxjAAAAAQAB", killed: "eJxjAAAAAQAB" } }],
  dlq: [{ reason: "WHATEVER" }, { payload: { encoding: "hex", data: "", size: 0, truncated: false } }],
  "io.chunk": [{ stream: "stdin" }, { seq: -1 }, { data: 42 }],
};

const TYPES = Object.keys(MESSAGE_SCHEMAS) as MessageType[];

describe("message schemas", () => {
  it("has an example and bad cases for every registered type", () => {
    expect(Object.keys(EXAMPLES).sort()).toEqual([...TYPES].sort());
    expect(Object.keys(BAD).sort()).toEqual([...TYPES].sort());
  });

  describe.each(TYPES)("%s", (type) => {
    const schema = MESSAGE_SCHEMAS[type] as z.ZodType;
    const example = EXAMPLES[type];

    it("accepts the valid example and round-trips through the codec", () => {
      expect(schema.safeParse(example).success).toBe(true);
      const bytes = encodeMessage(example as Message);
      const parsed = parseMessage(schema, bytes, "test.subject");
      expect(parsed).toEqual({ ok: true, value: example });
    });

    it("rejects a missing or unknown v", () => {
      const { v: _v, ...noV } = example;
      expect(schema.safeParse(noV).success).toBe(false);
      const r = parseMessage(schema, enc({ ...example, v: 2 }), "test.subject");
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.code).toBe("BAD_SCHEMA");
        expect(r.message).toContain("unsupported protocol version 2");
      }
    });

    it("rejects a wrong type", () => {
      expect(schema.safeParse({ ...example, type: "nope" }).success).toBe(false);
      const { type: _t, ...noType } = example;
      expect(schema.safeParse(noType).success).toBe(false);
    });

    it.each(BAD[type].map((patch) => [JSON.stringify(patch), patch] as const))("rejects %s", (_label, patch) => {
      expect(schema.safeParse({ ...example, ...patch }).success).toBe(false);
    });
  });

  it("accepts optional forms: batch submit, reply error, summary without trigger, launch_failed without pid", () => {
    expect(MESSAGE_SCHEMAS.submit.safeParse({ ...EXAMPLES.submit, batch: { script: "job.sh", content: "#!/bin/sh\n", output: "out.txt" }, argv: ["job.sh"] }).success).toBe(true);
    expect(MESSAGE_SCHEMAS.submit.safeParse({ ...EXAMPLES.submit, parentJob: "j1" }).success).toBe(true);
    expect(ReplySchema.safeParse(errReply("UNKNOWN_JOB", "no job j9", { job: "j9" })).success).toBe(true);
    const { trigger: _t, ...noTrigger } = EXAMPLES["step.summary"];
    expect(StepExitCodesMessageSchema.safeParse({ ...noTrigger, groups: { "exited:0": "0-15" }, killedByRuntime: "", state: "COMPLETED", reason: "None", exitCode: "0:0" }).success).toBe(true);
    const { pid: _p, ...noPid } = EXAMPLES["task.ended"];
    expect(MESSAGE_SCHEMAS["task.ended"].safeParse({ ...noPid, outcome: { kind: "launch_failed", code: 127, error: "ENOENT" } }).success).toBe(true);
    expect(MESSAGE_SCHEMAS["step.first_failure"].safeParse({ ...EXAMPLES["step.first_failure"], groups: { "signaled:11:core": "3", "launch_failed:126": "4", node_lost: "5-7", pending: "8", launching: "9", stopping: "10-15", "exited:255": "0-2" } }).success).toBe(true);
    expect(CommandAckSchema.safeParse({ type: "cmd.ack", v: 1, node: "n1", epoch: "e2", ok: false, error: { code: "STALE_EPOCH", message: "epoch e1 is gone" } }).success).toBe(true);
  });

  it("discriminates control requests by type", () => {
    const r = ControlRequestSchema.safeParse(EXAMPLES.kill);
    expect(r.success && r.data.type).toBe("kill");
    expect(ControlRequestSchema.safeParse({ ...EXAMPLES.kill, type: "launch" }).success).toBe(false);
  });

  it("builds replies and typed reply schemas", () => {
    expect(okReply()).toEqual({ type: "reply", v: 1, ok: true, data: null });
    expect(errReply("NO_NODES", "no node online")).toEqual({ type: "reply", v: 1, ok: false, error: { code: "NO_NODES", message: "no node online" } });
    const typed = replySchemaOf(SubmitReplyDataSchema);
    expect(typed.safeParse(okReply({ job: "j1", step: 0 })).success).toBe(true);
    expect(typed.safeParse(okReply({ job: "j 1", step: 0 })).success).toBe(false);
  });
});

describe("task outcome schema", () => {
  it("matches the exit-status TaskOutcome type both ways", () => {
    expectTypeOf<z.infer<typeof TaskOutcomeSchema>>().toExtend<TaskOutcome>();
    expectTypeOf<TaskOutcome>().toExtend<z.input<typeof TaskOutcomeSchema>>();
  });

  it("keeps agents from reporting node_lost", () => {
    expect(TaskOutcomeSchema.safeParse({ kind: "node_lost" }).success).toBe(true);
    expect(AgentTaskOutcomeSchema.safeParse({ kind: "node_lost" }).success).toBe(false);
  });

  it("names notification groups", () => {
    expect(outcomeGroupKey({ kind: "exited", code: 0 })).toBe("exited:0");
    expect(outcomeGroupKey({ kind: "signaled", signal: 11, coreDumped: true })).toBe("signaled:11:core");
    expect(outcomeGroupKey({ kind: "signaled", signal: 9, coreDumped: false })).toBe("signaled:9");
    expect(outcomeGroupKey({ kind: "launch_failed", code: 127, error: "x" })).toBe("launch_failed:127");
    expect(outcomeGroupKey({ kind: "node_lost" })).toBe("node_lost");
  });
});

describe("cmd.launch by ranges", () => {
  // A realistic launch: a long command line and an environment of about 4 KiB from `submit`.
  const env = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`VAR_${i}`, "v".repeat(56)]));
  const launch = (ntasks: number, ranks: string) => ({ ...EXAMPLES["cmd.launch"], argv: ["python3", "train.py", "--epochs", "90"], env, ntasks, ranks });

  it("has the same size for 10 tasks on a node or 50,000: far under the payload limit", () => {
    const ten = encodeMessage(launch(10, "0-9") as Message).length;
    const fiftyThousand = encodeMessage(launch(100_000, "50000-99999") as Message).length;
    expect(fiftyThousand - ten).toBeLessThanOrEqual(16); // only the digits of ntasks and of the range differ
    expect(fiftyThousand).toBeLessThan(8 * 1024);
    expect(fiftyThousand * 100).toBeLessThan(MAX_PAYLOAD_BYTES);
    // The per-task list it replaced ({"rank":…,"localId":…} for each task) would not even fit.
    const list = JSON.stringify(Array.from({ length: 50_000 }, (_, i) => ({ rank: 50_000 + i, localId: i })));
    expect(list.length).toBeGreaterThan(MAX_PAYLOAD_BYTES);
  });

  it("round-trips the ranks as an id set, and refuses ranks at or beyond ntasks", () => {
    const bytes = encodeMessage(launch(100_000, "50000-99999") as Message);
    const parsed = parseMessage(MESSAGE_SCHEMAS["cmd.launch"], bytes, "muster.node.n1.cmd");
    expect(parsed.ok && parsed.value.type === "cmd.launch" && parsed.value.ranks).toBe("50000-99999");
    const outside = parseMessage(MESSAGE_SCHEMAS["cmd.launch"], encodeMessage(launch(50_000, "0-50000") as Message), "s");
    expect(outside).toMatchObject({ ok: false, code: "BAD_SCHEMA", message: "s: ranks: ranks must be a non-empty id set of ranks below ntasks" });
  });
});

describe("parseMessage", () => {
  const schema = MESSAGE_SCHEMAS.heartbeat;

  it("rejects oversize payloads before decoding them", () => {
    const r = parseMessage(schema, new Uint8Array(MAX_PAYLOAD_BYTES + 1), "muster.node.n1.hb");
    expect(r).toEqual({ ok: false, code: "PAYLOAD_TOO_LARGE", message: `muster.node.n1.hb: payload of ${MAX_PAYLOAD_BYTES + 1} bytes exceeds ${MAX_PAYLOAD_BYTES}` });
    expect(parseMessage(schema, enc(EXAMPLES.heartbeat), "s", 10)).toMatchObject({ ok: false, code: "PAYLOAD_TOO_LARGE" });
  });

  it("rejects garbage bytes and non-JSON", () => {
    const bad = parseMessage(schema, new Uint8Array([0xff, 0xfe, 0x00, 0x80]), "s");
    expect(bad).toMatchObject({ ok: false, code: "BAD_JSON" });
    const text = parseMessage(schema, new TextEncoder().encode("{type: heartbeat"), "s");
    expect(text).toMatchObject({ ok: false, code: "BAD_JSON" });
    if (!text.ok) expect(text.message).toMatch(/^s: not JSON: /);
    expect(parseMessage(schema, new Uint8Array(0), "s")).toMatchObject({ ok: false, code: "BAD_JSON" });
  });

  it("names the first bad field of a wrong shape", () => {
    const r = parseMessage(schema, enc({ ...EXAMPLES.heartbeat, seq: -1 }), "muster.node.n1.hb");
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.code).toBe("BAD_SCHEMA");
      expect(r.message).toMatch(/^muster\.node\.n1\.hb: seq: Too small/);
    }
    const nested = parseMessage(MESSAGE_SCHEMAS.submit, enc({ ...EXAMPLES.submit, argv: ["ok", 3] }), "s");
    expect(!nested.ok && nested.message).toMatch(/^s: argv\[1\]: /);
    expect(parseMessage(schema, enc(42), "s")).toMatchObject({ ok: false, code: "BAD_SCHEMA", message: expect.stringMatching(/^s: \(root\): /) });
    expect(parseMessage(schema, enc(null), "s")).toMatchObject({ ok: false, code: "BAD_SCHEMA" });
  });

  it("encodeMessage refuses a message above the payload limit", () => {
    const big = { ...EXAMPLES["io.chunk"], data: "x".repeat(MAX_PAYLOAD_BYTES) };
    expect(() => encodeMessage(big)).toThrow(ProtocolError);
    try {
      encodeMessage(big);
    } catch (err) {
      expect((err as ProtocolError).code).toBe("PAYLOAD_TOO_LARGE");
    }
  });
});

describe("createDlqRecord", () => {
  it("keeps short UTF-8 payloads as text", () => {
    const bytes = new TextEncoder().encode("{not json");
    const rec = createDlqRecord({ subject: "muster.evt.n1.j1.0.0", reason: "BAD_JSON", message: "x", bytes, receivedAt: AT });
    expect(rec.payload).toEqual({ encoding: "utf8", data: "{not json", size: 9, truncated: false });
    expect(MESSAGE_SCHEMAS.dlq.safeParse(rec).success).toBe(true);
  });

  it("truncates at a character boundary and falls back to base64 for binary", () => {
    const text = new TextEncoder().encode("é".repeat(DLQ_PAYLOAD_LIMIT));
    const rec = createDlqRecord({ subject: "s", reason: "PAYLOAD_TOO_LARGE", message: "x", bytes: text, receivedAt: AT, limit: 5 });
    expect(rec.payload).toEqual({ encoding: "utf8", data: "éé", size: text.byteLength, truncated: true });
    const bin = createDlqRecord({ subject: "s", reason: "BAD_JSON", message: "x", bytes: new Uint8Array([0xff, 0x00, 0x80]), receivedAt: AT });
    expect(bin.payload).toEqual({ encoding: "base64", data: "/wCA", size: 3, truncated: false });
  });
});

describe("subjects", () => {
  const s = createSubjects();

  it("builds every subject under the default prefix", () => {
    expect(s.prefix).toBe("muster");
    expect(s.ctl.submit("alice")).toBe("muster.ctl.alice.submit");
    expect(s.ctl.kill("alice")).toBe("muster.ctl.alice.kill");
    expect(s.ctl.signal("alice")).toBe("muster.ctl.alice.signal");
    expect(s.ctl.query("alice")).toBe("muster.ctl.alice.query");
    expect([s.ctl.submitAll, s.ctl.killAll, s.ctl.signalAll, s.ctl.queryAll, s.ctl.all]).toEqual([
      "muster.ctl.*.submit", "muster.ctl.*.kill", "muster.ctl.*.signal", "muster.ctl.*.query", "muster.ctl.>",
    ]);
    expect(s.ctl.opAll("kill")).toBe("muster.ctl.*.kill");
    expect(s.node.cmd("node-1")).toBe("muster.node.node-1.cmd");
    expect(s.node.hb("node-1")).toBe("muster.node.node-1.hb");
    expect(s.node.hello("node-1")).toBe("muster.node.node-1.hello");
    expect(s.node.bye("node-1")).toBe("muster.node.node-1.bye");
    expect(s.node.draining("node-1")).toBe("muster.node.node-1.draining");
    expect(s.node.own("node-1")).toBe("muster.node.node-1.>");
    expect([s.node.hbAll, s.node.helloAll, s.node.byeAll, s.node.drainingAll]).toEqual([
      "muster.node.*.hb", "muster.node.*.hello", "muster.node.*.bye", "muster.node.*.draining",
    ]);
    expect(s.evt.task("node-1", "j42", 0, 3)).toBe("muster.evt.node-1.j42.0.3");
    expect(s.evt.task("node-1", "j42", "batch", 0)).toBe("muster.evt.node-1.j42.batch.0");
    expect(s.evt.ofNode("node-1")).toBe("muster.evt.node-1.>");
    expect(s.evt.ofJob("j42")).toBe("muster.evt.*.j42.>");
    expect(s.evt.all).toBe("muster.evt.>");
    expect(s.io.task("j42", 1, 7)).toBe("muster.io.j42.1.7");
    expect(s.io.ofStep("j42", 1)).toBe("muster.io.j42.1.*");
    expect(s.io.ofJob("j42")).toBe("muster.io.j42.>");
    expect(s.io.all).toBe("muster.io.>");
    expect(s.job.state("j42")).toBe("muster.job.j42.state");
    expect(s.job.exitCodes("j42", 2)).toBe("muster.job.j42.step.2.exitcodes");
    expect(s.job.ofJob("j42")).toBe("muster.job.j42.>");
    expect([s.job.stateAll, s.job.exitCodesAll, s.job.all]).toEqual(["muster.job.*.state", "muster.job.*.step.*.exitcodes", "muster.job.>"]);
    expect(s.dlq.of("evt")).toBe("muster.dlq.evt");
    expect(s.dlq.all).toBe("muster.dlq.>");
  });

  it("derives stream and bucket names from the prefix", () => {
    expect(s.streams.events).toEqual({ name: "MUSTER_EVENTS", subjects: ["muster.evt.>"] });
    expect(s.streams.jobs).toEqual({ name: "MUSTER_JOBS", subjects: ["muster.job.>"] });
    expect(s.streams.nodes.name).toBe("MUSTER_NODES");
    expect(s.streams.nodes.subjects).toEqual(["muster.node.*.hello", "muster.node.*.bye", "muster.node.*.draining", "muster.node.*.hb"]);
    expect(s.streams.io).toEqual({ name: "MUSTER_IO", subjects: ["muster.io.>"] });
    expect(s.streams.dlq).toEqual({ name: "MUSTER_DLQ", subjects: ["muster.dlq.>"] });
    expect(s.buckets).toEqual({ snapshots: "muster_snapshots", leases: "muster_leases", history: "muster_history" });
    const t = createSubjects("acme.test-1");
    expect(t.ctl.submit("bob")).toBe("acme.test-1.ctl.bob.submit");
    expect(t.streams.events.name).toBe("ACME_TEST-1_EVENTS");
    expect(t.buckets.snapshots).toBe("acme_test-1_snapshots");
    // no stream captures control or command subjects: JetStream would answer those requests itself
    for (const def of Object.values(s.streams)) for (const subj of def.subjects) expect(subj).not.toMatch(/\.(ctl|cmd)\b/);
  });

  it.each([
    ["a.b"], ["*"], [">"], ["has space"], [""], ["tab\t"], ["x".repeat(129)], ["ünï"],
  ])("rejects the token %j with a typed error", (bad) => {
    for (const build of [() => s.ctl.submit(bad), () => s.node.cmd(bad), () => s.job.state(bad), () => s.evt.task("n", bad, 0, 0), () => s.dlq.of(bad)]) {
      expect(build).toThrow(SubjectTokenError);
    }
    try {
      s.ctl.kill(bad);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(SubjectTokenError);
      expect((err as SubjectTokenError).code).toBe("INVALID_SUBJECT_TOKEN");
      expect((err as SubjectTokenError).kind).toBe("user");
      expect((err as SubjectTokenError).message).toMatch(/^invalid user for a subject token: /);
    }
  });

  it("rejects bad steps, ranks and prefixes", () => {
    expect(() => s.evt.task("n", "j", -1, 0)).toThrow(/invalid step/);
    expect(() => s.evt.task("n", "j", 1.5, 0)).toThrow(SubjectTokenError);
    expect(() => s.evt.task("n", "j", "batch2" as never, 0)).toThrow(/invalid step/);
    expect(() => s.io.task("j", 0, -3)).toThrow(/invalid task/);
    expect(() => s.io.task("j", 0, Number.NaN)).toThrow(SubjectTokenError);
    expect(() => s.evt.task(42 as never, "j", 0, 0)).toThrow(/not a string/);
    for (const bad of ["", "a..b", ".a", "a.", "a.*", "a.>", "a b"]) expect(() => createSubjects(bad)).toThrow(SubjectTokenError);
  });

  it("parses concrete subjects back into tokens", () => {
    expect(s.parse("muster.ctl.alice.submit")).toEqual({ kind: "ctl", user: "alice", op: "submit" });
    expect(s.parse("muster.node.n1.hb")).toEqual({ kind: "node", node: "n1", channel: "hb" });
    expect(s.parse("muster.evt.n1.j42.batch.0")).toEqual({ kind: "evt", node: "n1", job: "j42", step: "batch", task: 0 });
    expect(s.parse("muster.evt.n1.j42.3.17")).toEqual({ kind: "evt", node: "n1", job: "j42", step: 3, task: 17 });
    expect(s.parse("muster.io.j42.0.5")).toEqual({ kind: "io", job: "j42", step: 0, task: 5 });
    expect(s.parse("muster.job.j42.state")).toEqual({ kind: "job.state", job: "j42" });
    expect(s.parse("muster.job.j42.step.1.exitcodes")).toEqual({ kind: "step.exitcodes", job: "j42", step: 1 });
    expect(s.parse("muster.dlq.evt")).toEqual({ kind: "dlq", source: "evt" });
    for (const bad of ["other.ctl.a.submit", "muster.ctl.a.launch", "muster.ctl.*.submit", "muster.evt.n.j.01.0", "muster.evt.n.j.0", "muster.node.n.foo", "muster.job.j.step.x.exitcodes", "muster"]) {
      expect(s.parse(bad)).toBeUndefined();
    }
  });
});

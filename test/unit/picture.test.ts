import { deflateSync, inflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { errorLines, groupLines, renderJob, summaryLines } from "../../src/cli/render.js";
import { groupTasks, type TaskGroups, type TaskStatusEntry } from "../../src/exit-status/index.js";
import {
  MAX_PACKED_TASKS,
  MAX_PAYLOAD_BYTES,
  PACK_ABOVE_BYTES,
  StepExitCodesMessageSchema,
  StepViewSchema,
  decodeTaskPicture,
  encodeMessage,
  encodeTaskPicture,
  packTaskStatus,
  parseMessage,
  withIdSets,
  type JobView,
  type PackedTaskStatus,
  type StepExitCodesMessage,
  type StepFirstFailure,
  type StepSummary,
  type StepView,
} from "../../src/protocol/index.js";
import { prng } from "./machines/helpers.js";

const AT = 1_700_000_000_000;

/** Every rank's entry, from a key and a killed flag per rank; four nodes in blocks, as placement does. */
function entries(n: number, keyOf: (rank: number) => string, killed: (rank: number) => boolean = () => false): Generator<TaskStatusEntry> {
  const perNode = Math.ceil(n / 4);
  return (function* () {
    for (let rank = 0; rank < n; rank++) yield { rank, node: `node-${1 + Math.floor(rank / perNode)}`, key: keyOf(rank), killedByRuntime: killed(rank) };
  })();
}

/** The first failure of the bench (test/bench/notification-size.ts): tasks end in a random order; half have ended, one of them with exit 1. */
function randomOrderFirstFailure(n: number, seed: number): { picture: TaskGroups; failed: number } {
  const rand = prng(seed);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const ended = new Uint8Array(n);
  for (let i = 0; i < n / 2; i++) ended[order[i]!] = 1;
  const failed = order[Math.floor(n / 2) - 1]!;
  return { picture: groupTasks(entries(n, (r) => (r === failed ? "exited:1" : ended[r] ? "exited:0" : "running"))), failed };
}

function firstFailure(n: number, picture: TaskGroups, failed: number, wire = encodeTaskPicture(picture, n)): StepFirstFailure {
  return {
    type: "step.first_failure", v: 1, job: "42", step: 0,
    trigger: { rank: failed, node: "node-1", outcome: { kind: "exited", code: 1 }, at: AT },
    publishedAt: AT + 1, ntasks: n, ...wire,
  };
}

function summary(n: number, picture: TaskGroups, wire = encodeTaskPicture(picture, n)): StepSummary {
  return {
    type: "step.summary", v: 1, job: "42", step: 0,
    trigger: { rank: 3, node: "node-1", outcome: { kind: "exited", code: 1 }, at: AT },
    publishedAt: AT + 9, ntasks: n, ...wire,
    state: "FAILED", reason: "NonZeroExitCode", exitCode: "1:0",
  };
}

/** Encodes, sends through the codec and parses back, as a watcher gets it. */
function overTheWire(msg: StepExitCodesMessage): { msg: StepExitCodesMessage; bytes: number } {
  const bytes = encodeMessage(msg);
  const parsed = parseMessage(StepExitCodesMessageSchema, bytes, "muster.job.42.step.0.exitcodes");
  if (!parsed.ok) throw new Error(parsed.message);
  return { msg: parsed.value, bytes: bytes.byteLength };
}

const inflate = (b64: string): Uint8Array => new Uint8Array(inflateSync(Buffer.from(b64, "base64")));

describe("packed task picture: round trips", () => {
  it.each([
    [100_000, 1],
    [1_000_000, 2],
  ])("decodes a random group assignment of %i tasks (random killed ranks) to the picture groupTasks built", (n, seed) => {
    const rand = prng(seed);
    const keys = ["exited:0", "exited:1", "exited:3", "signaled:9", "signaled:11:core", "running", "node_lost"];
    const keyOf = new Array<string>(n);
    const killed = new Uint8Array(n);
    for (let r = 0; r < n; r++) {
      keyOf[r] = keys[Math.floor(rand() * rand() * keys.length)]!;
      killed[r] = rand() < 0.1 ? 1 : 0;
    }
    const picture = groupTasks(entries(n, (r) => keyOf[r]!, (r) => killed[r] === 1));
    const packed = packTaskStatus(picture, n);
    expect(packed.bits).toBe(4);
    expect(packed.keys).toEqual(Object.keys(picture.groups));
    const decoded = decodeTaskPicture({ ntasks: n, packed, nodes: picture.nodes });
    expect(decoded).toEqual(picture);
    expect(Object.keys(decoded.groups)).toEqual(Object.keys(picture.groups));
  });

  it.each([
    [2, 1],
    [3, 2],
    [4, 2],
    [5, 4],
    [16, 4],
    [17, 8],
    [256, 8],
    [257, 16],
    [384, 16],
  ])("packs %i groups with %i-bit indexes and decodes them back", (nkeys, bits) => {
    const all = [...Array.from({ length: 256 }, (_, c) => `exited:${c}`), ...Array.from({ length: 64 }, (_, s) => [`signaled:${s + 1}`, `signaled:${s + 1}:core`]).flat()];
    const keys = all.slice(0, nkeys);
    const n = 3 * nkeys + 5;
    const rand = prng(nkeys);
    const picture = groupTasks(entries(n, (r) => keys[r < nkeys ? r : Math.floor(rand() * nkeys)]!, (r) => r % 7 === 0));
    const packed = packTaskStatus(picture, n);
    expect(packed.bits).toBe(bits);
    expect(decodeTaskPicture({ ntasks: n, packed, nodes: picture.nodes })).toEqual(picture);
    expect(StepExitCodesMessageSchema.safeParse(summary(n, picture, { packed, nodes: picture.nodes })).success).toBe(true);
  });

  it("lays out ranks as documented: indexes from the least significant bit, zero padding, killed as one bit per rank", () => {
    // Ranks 0..4: exited:0, exited:1, running, exited:0, exited:1; keys in print order: running, exited:0, exited:1.
    const picture: TaskGroups = { groups: { running: "2", "exited:0": "0,3", "exited:1": "1,4" }, nodes: { "node-1": "0-4" }, killedByRuntime: "2,4" };
    const packed = packTaskStatus(picture, 5);
    expect(packed.keys).toEqual(["running", "exited:0", "exited:1"]);
    expect(packed.bits).toBe(2);
    // indexes 1,2,0,1,2 -> byte 0 = 1 | 2<<2 | 0<<4 | 1<<6 = 0x49, byte 1 = 2.
    expect([...inflate(packed.data)]).toEqual([0x49, 0x02]);
    expect([...inflate(packed.killed)]).toEqual([0b10100]);
    const sixteen = packTaskStatus(groupTasks(entries(300, (r) => (r < 256 ? `exited:${r}` : `signaled:${(r % 64) + 1}`))), 300);
    expect(sixteen.bits).toBe(16);
    const bytes = inflate(sixteen.data);
    expect(bytes.length).toBe(600);
    expect([bytes[2 * 299], bytes[2 * 299 + 1]]).toEqual([299 & 0xff, 299 >> 8]);
  });

  it("refuses to pack a picture that is not a partition of the ranks", () => {
    const base = { nodes: { n: "0-3" }, killedByRuntime: "" };
    expect(() => packTaskStatus({ ...base, groups: { "exited:0": "0-2" } }, 4)).toThrow("rank 3 is in no group");
    expect(() => packTaskStatus({ ...base, groups: { "exited:0": "0-3", "exited:1": "2" } }, 4)).toThrow("rank 2 is in two groups (exited:0 and exited:1)");
    expect(() => packTaskStatus({ ...base, groups: { "exited:0": "0-4" } }, 4)).toThrow("group exited:0 has rank 4, beyond the 4 tasks");
    expect(() => packTaskStatus({ ...base, groups: { "exited:0": "0-3" }, killedByRuntime: "9" }, 4)).toThrow("killedByRuntime has rank 9");
  });
});

describe("choosing the form", () => {
  it("keeps the id-set form, exactly as before, when its id sets are small (the rank-order case at any size)", () => {
    const picture = groupTasks(entries(1_000_000, (r) => (r < 400_000 ? "exited:0" : r === 400_000 ? "exited:1" : "running")));
    const wire = encodeTaskPicture(picture, 1_000_000);
    expect(wire).toEqual({ groups: picture.groups, killedByRuntime: "", nodes: picture.nodes });
    expect(Object.keys(wire)).toEqual(["groups", "killedByRuntime", "nodes"]);
  });

  it("packs above the threshold only when that is smaller", () => {
    const { picture } = randomOrderFirstFailure(10_000, 3);
    expect(JSON.stringify(picture.groups).length).toBeGreaterThan(PACK_ABOVE_BYTES);
    expect(Object.keys(encodeTaskPicture(picture, 10_000))).toEqual(["packed", "nodes"]);
    // Every 50th rank failed: 200 single ranks, about 1.4 KB of id sets; packed forced by a zero threshold is
    // smaller still, while a picture whose id sets beat the packed form keeps them.
    const sparse = groupTasks(entries(10_000, (r) => (r % 50 === 0 ? "exited:1" : "exited:0")));
    expect(Object.keys(encodeTaskPicture(sparse, 10_000, { packAboveBytes: 0 }))).toEqual(["packed", "nodes"]);
    const tiny = groupTasks(entries(4, (r) => (r === 1 ? "exited:1" : "exited:0")));
    expect(Object.keys(encodeTaskPicture(tiny, 4, { packAboveBytes: 0 }))).toEqual(["groups", "killedByRuntime", "nodes"]);
  });

  it("falls back to counts when not even the packed form fits the budget, so the notification still goes out", () => {
    const { picture, failed } = randomOrderFirstFailure(20_000, 4);
    const wire = encodeTaskPicture(picture, 20_000, { budgetBytes: 1000 });
    expect(wire).toEqual({ counts: { groups: { running: 10_000, "exited:0": 9_999, "exited:1": 1 }, killedByRuntime: 0 }, nodes: picture.nodes });
    const { msg } = overTheWire(firstFailure(20_000, picture, failed, wire));
    expect(summaryLines(msg)).toEqual([
      `Task Exit Code Summary for StepId=42.0 (first failure: task ${failed} on node-1: Exited with exit code 1)`,
      "  running   10000 tasks",
      "  exited 0  9999 tasks",
      "  exited 1  1 task",
      "  (ranks not listed: too many for one message)",
    ]);
    expect(errorLines(msg)).toEqual(["1 task (ranks not listed): Exited with exit code 1"]);
  });

  it("does not throw for a picture it cannot pack: it sends the id sets or counts instead", () => {
    const broken: TaskGroups = { groups: { "exited:0": "0-2" }, nodes: { n: "0-3" }, killedByRuntime: "" };
    expect(encodeTaskPicture(broken, 4, { packAboveBytes: 0 })).toEqual({ groups: { "exited:0": "0-2" }, killedByRuntime: "", nodes: { n: "0-3" } });
  });
});

describe("notification size", () => {
  it.each([
    [100_000, 64 * 1024],
    [1_000_000, MAX_PAYLOAD_BYTES],
  ])("the first failure of a %i-task step whose tasks end in a random order is under %i bytes, and the id-set form would not be", (n, limit) => {
    const { picture, failed } = randomOrderFirstFailure(n, 5);
    const idSetForm = firstFailure(n, picture, failed, { groups: picture.groups, killedByRuntime: picture.killedByRuntime, nodes: picture.nodes });
    expect(Buffer.byteLength(JSON.stringify(idSetForm))).toBeGreaterThan(limit);
    const { msg, bytes } = overTheWire(firstFailure(n, picture, failed));
    console.log(`picture: first failure of ${n} tasks in random order: ${bytes} bytes packed, ${Buffer.byteLength(JSON.stringify(idSetForm))} as id sets`);
    expect(msg.packed).toBeDefined();
    expect(bytes).toBeLessThan(limit);
    expect(decodeTaskPicture(msg)).toEqual(picture);
  });
});

describe("rendering a packed notification", () => {
  it("prints the same Task Exit Code Summary and per-task lines as the id-set form (CLI renderer, through the codec)", () => {
    // 64 tasks on 4 nodes; the first failure is rank 5, exits came in a random order, -K stopped some.
    const rand = prng(6);
    const keyOf = (r: number): string => (r === 5 ? "exited:1" : r % 9 === 0 ? "signaled:15" : r % 11 === 0 ? "signaled:11:core" : rand() < 0.5 ? "exited:0" : "launch_failed:127");
    const picture = groupTasks(entries(64, keyOf, (r) => r % 9 === 0 || r === 33));
    const idSets = overTheWire(summary(64, picture)).msg;
    expect(idSets.groups).toBeDefined();
    const packed = overTheWire(summary(64, picture, encodeTaskPicture(picture, 64, { packAboveBytes: 0 }))).msg;
    expect(packed.groups).toBeUndefined();
    expect(packed.packed?.keys).toEqual(Object.keys(picture.groups));
    expect(summaryLines(packed)).toEqual(summaryLines(idSets));
    expect(errorLines(packed, new Map([[1, "boom"]]))).toEqual(errorLines(idSets, new Map([[1, "boom"]])));
    expect(summaryLines(packed)[0]).toBe("Task Exit Code Summary for StepId=42.0: FAILED, ExitCode=1:0, Reason=NonZeroExitCode");
    expect(errorLines(packed)).toContain("node-1: task 5: Exited with exit code 1");
    expect(errorLines(packed).some((l) => l.endsWith("Terminated (stopped by muster)"))).toBe(true);
  });

  it("renders a 100,000-task random-order first failure identically in both forms", () => {
    const { picture, failed } = randomOrderFirstFailure(100_000, 7);
    const idSets = firstFailure(100_000, picture, failed, { groups: picture.groups, killedByRuntime: picture.killedByRuntime, nodes: picture.nodes });
    const packed = overTheWire(firstFailure(100_000, picture, failed)).msg;
    expect(packed.packed).toBeDefined();
    expect(summaryLines(packed)).toEqual(summaryLines(idSets));
  });
});

describe("step view", () => {
  const view = (step: StepView): JobView => ({
    jobId: "42", name: "big", user: "alice", kind: "run", state: "RUNNING", reason: "None", exitCode: "0:0", derivedExitCode: "0:0",
    failedNodes: [], ntasks: step.ntasks, nodes: Object.keys(step.nodes), submittedAt: AT, steps: [step],
  });

  it("carries a huge step's groups packed; `show job` prints the same groups and the page gets id sets", () => {
    const { picture } = randomOrderFirstFailure(10_000, 8);
    const base = { stepId: "0", state: "RUNNING" as const, reason: "None", exitCode: "0:0", ntasks: 10_000, failedNodes: [], tasks: [], tasksOmitted: true };
    const packed: StepView = { ...base, ...encodeTaskPicture(picture, 10_000) };
    const plain: StepView = { ...base, groups: picture.groups, killedByRuntime: picture.killedByRuntime, nodes: picture.nodes };
    expect(packed.packed).toBeDefined();
    expect(StepViewSchema.safeParse(packed).success).toBe(true);
    expect(StepViewSchema.safeParse({ ...packed, groups: picture.groups }).success).toBe(false);
    expect(renderJob(view(packed))).toBe(renderJob(view(plain)));
    expect(groupLines(packed, "  ")).toEqual(Object.entries(picture.groups).map(([k, r]) => `  ${k}: ${r}`));
    const forPage = withIdSets(packed);
    expect(forPage).not.toHaveProperty("packed");
    expect(forPage).toMatchObject({ groups: picture.groups, killedByRuntime: "", nodes: picture.nodes });
  });
});

describe("schema: malformed pictures are rejected", () => {
  const n = 16;
  const picture = groupTasks(entries(n, (r) => (r === 3 ? "exited:1" : r >= 10 ? "signaled:15" : "exited:0"), (r) => r >= 10));
  const packed = packTaskStatus(picture, n);
  const good = summary(n, picture, { packed, nodes: picture.nodes });
  const b64 = (bytes: number[]): string => Buffer.from(bytes).toString("base64");
  const deflate = (bytes: number[]): string => deflateSync(Buffer.from(bytes)).toString("base64");
  const indexes = [...inflate(packed.data)];

  function reason(patch: Partial<Record<keyof StepSummary, unknown>> | { packed: Partial<PackedTaskStatus> }, base: object = good): string {
    const msg = { ...base, ...patch };
    const r = parseMessage(StepExitCodesMessageSchema, new TextEncoder().encode(JSON.stringify(msg)), "s");
    return r.ok ? "accepted" : r.message;
  }
  const withPacked = (p: Partial<PackedTaskStatus>) => reason({ packed: { ...packed, ...p } });

  it("accepts the packed form", () => {
    expect(reason({})).toBe("accepted");
    expect(StepExitCodesMessageSchema.safeParse(good).success).toBe(true);
  });

  it("rejects two forms, or none", () => {
    expect(reason({ groups: picture.groups })).toMatch(/exactly one of groups, packed or counts is required, found groups and packed/);
    expect(reason({ killedByRuntime: "" })).toMatch(/killedByRuntime: only with groups/);
    expect(reason({ counts: { groups: { "exited:0": 16 }, killedByRuntime: 0 } })).toMatch(/found packed and counts/);
    expect(reason({ packed: undefined })).toMatch(/found none/);
    expect(reason({ packed: undefined, groups: picture.groups })).toMatch(/killedByRuntime: required with groups/);
  });

  it("rejects bad base64 and data that is not a zlib stream", () => {
    expect(withPacked({ data: "not base64!" })).toMatch(/packed\.data/);
    expect(withPacked({ data: "" })).toMatch(/data: not base64/);
    expect(withPacked({ data: b64(indexes) })).toMatch(/data: not a zlib stream of 4 bytes/);
    expect(withPacked({ killed: b64([1, 2, 3]) })).toMatch(/killed: not a zlib stream of 2 bytes/);
    expect(withPacked({ data: b64([...Buffer.from(packed.data, "base64"), 0]) })).toMatch(/bytes after the end of the stream/);
  });

  it("rejects a decoded length that does not match ntasks", () => {
    expect(withPacked({ data: deflate(indexes.slice(0, 3)) })).toMatch(/data: decodes to 3 bytes, expected 4 \(16 tasks at 2 bits\)/);
    expect(withPacked({ data: deflate([...indexes, 0]) })).toMatch(/data: not a zlib stream of 4 bytes .*more than 4 bytes/);
    expect(reason({ ntasks: 17 })).toMatch(/expected 5 \(17 tasks at 2 bits\)/);
    expect(reason({ ntasks: 15 })).toMatch(/expected 4 \(15 tasks at 2 bits\)|padding bits/);
    expect(reason({ ntasks: MAX_PACKED_TASKS + 1 })).toMatch(/a packed picture holds 1 to 16777216 tasks/);
  });

  it("rejects group indexes beyond the keys, unused or repeated keys, and bits that do not fit", () => {
    expect(withPacked({ data: deflate([0xff, ...indexes.slice(1)]) })).toMatch(/data: rank 0 has group index 3, but there are 3 keys/);
    expect(withPacked({ keys: [...packed.keys, "exited:2"] })).toMatch(/keys: group exited:2 has no rank/);
    expect(withPacked({ keys: [packed.keys[0]!, packed.keys[0]!, packed.keys[2]!] })).toMatch(/keys repeat a group key/);
    expect(withPacked({ bits: 1 })).toMatch(/3 keys do not fit 1-bit indexes/);
    expect(withPacked({ bits: 3 as never })).toMatch(/packed\.bits/);
    expect(withPacked({ keys: [] })).toMatch(/packed\.keys/);
    expect(withPacked({ keys: ["running", "exited:0", "exited:1"] })).toMatch(/packed\.keys\[0\]/);
  });

  it("rejects padding bits that are not zero", () => {
    const five = summary(5, groupTasks(entries(5, (r) => (r === 3 ? "exited:1" : "exited:0"))), { packed: packTaskStatus(groupTasks(entries(5, (r) => (r === 3 ? "exited:1" : "exited:0"))), 5), nodes: { "node-1": "0-4" } });
    expect(reason({}, five)).toBe("accepted");
    expect(reason({ packed: { ...five.packed!, killed: deflate([0b1000_0000]) } }, five)).toMatch(/killed: padding bits after rank 4 are not zero/);
  });

  it("rejects counts that do not add up", () => {
    const counts = (c: unknown) => reason({ packed: undefined, counts: c });
    expect(counts({ groups: { "exited:0": 15, "exited:1": 1 }, killedByRuntime: 6 })).toBe("accepted");
    expect(counts({ groups: { "exited:0": 15 }, killedByRuntime: 0 })).toMatch(/counts add up to 15, not ntasks 16/);
    expect(counts({ groups: { "exited:0": 16 }, killedByRuntime: 17 })).toMatch(/counts\.killedByRuntime: more than ntasks 16/);
    expect(counts({ groups: { running: 16 }, killedByRuntime: 0 })).toMatch(/counts\.groups/);
  });
});

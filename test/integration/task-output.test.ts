// An agent's TaskOutput against a real nats-server: a writer is told to wait at the high-water mark
// and let go once the output is published; output that cannot be slowed down beyond the hard limit
// is dropped, counted, and shows as a jump of `offset` in the chunks a reader gets.
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/logger.js";
import { ensureStreams } from "../../src/nats/streams.js";
import { IoChunkSchema, createSubjects, parseMessage, type IoChunk, type Subjects } from "../../src/protocol/index.js";
import { StepOutput } from "../../src/cli/step-output.js";
import { TaskOutput } from "../../services/agent/task-output.js";
import { startNatsServer, uniquePrefix, type NatsServerHandle } from "../support/nats-fixture.js";

const logger = createLogger({ level: "silent", pretty: false });
let server: NatsServerHandle;
let nc: NatsConnection;
let subjects: Subjects;

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connect({ servers: server.url });
  subjects = createSubjects(uniquePrefix());
  await ensureStreams(await jetstreamManager(nc), subjects, { replicas: 1, retentionSeconds: 3600 });
});

afterAll(async () => {
  await nc?.close();
  await server?.cleanup();
});

function taskOutput(job: string, opts: { maxPendingBytes?: number; highWaterBytes?: number; lowWaterBytes?: number } = {}): TaskOutput {
  return new TaskOutput({
    js: jetstream(nc),
    subjects,
    job,
    step: 0,
    rank: 0,
    epoch: "e1",
    logger,
    signal: new AbortController().signal,
    ackTimeoutMs: 5000,
    isConnected: () => true,
    ...opts,
  });
}

async function chunksOf(job: string): Promise<IoChunk[]> {
  const js = jetstream(nc);
  const consumer = await js.consumers.get(subjects.streams.io.name, { filter_subjects: subjects.io.ofStep(job, 0) });
  const out: IoChunk[] = [];
  for (;;) {
    const m = await consumer.next({ expires: 1000 });
    if (!m) return out;
    const p = parseMessage(IoChunkSchema, m.data, m.subject);
    if (p.ok) out.push(p.value);
  }
}

describe("TaskOutput", () => {
  it("asks the writer to wait at the high-water mark and lets it go once published; every byte arrives in order", async () => {
    const out = taskOutput("1", { highWaterBytes: 100_000, lowWaterBytes: 30_000 });
    const piece = Buffer.alloc(50_000, 0x61);
    const waits: (Promise<void> | undefined)[] = [];
    for (let i = 0; i < 6; i++) waits.push(out.write("stdout", piece));
    // Under the mark the writer goes on; at it (a chunk of 64 KiB may already be on its way) it is asked to wait.
    expect(waits[0]).toBeUndefined();
    expect(waits.some((w) => w instanceof Promise)).toBe(true);
    await Promise.all(waits);
    await out.end();
    expect(out.lostBytes).toBe(0);
    const chunks = (await chunksOf("1")).filter((c) => c.stream === "stdout");
    let pos = 0;
    for (const c of chunks) {
      expect(c.offset).toBe(pos);
      pos += Buffer.byteLength(c.data, c.encoding === "base64" ? "base64" : "utf8");
    }
    expect(pos).toBe(300_000);
    expect(chunks.at(-1)!.eof).toBe(true);
  });

  it("drops what comes beyond the hard limit when the writer does not wait, counts it, and the reader learns how much", async () => {
    const out = taskOutput("2", { maxPendingBytes: 150_000, highWaterBytes: 100_000 });
    const sent = Buffer.concat([Buffer.from("head\n"), Buffer.alloc(99_995, 0x62)]);
    for (let i = 0; i < 4; i++) void out.write("stdout", sent); // a writer that ignores the request to wait
    void out.write("stderr", Buffer.from("e\n"));
    await out.end();
    expect(out.lostBytes).toBeGreaterThan(0);
    const got: Buffer[] = [];
    const reader = new StepOutput({ label: false, target: (_r, s) => (s === "stdout" ? { write: (b) => got.push(Buffer.from(b)) } : undefined) });
    for (const c of await chunksOf("2")) reader.take(c);
    expect(reader.ended(0, "stdout") && reader.ended(0, "stderr")).toBe(true);
    expect(reader.losses()).toEqual([{ rank: 0, stream: "stdout", bytes: out.lostBytes }]);
    expect(Buffer.concat(got).length + out.lostBytes).toBe(400_000);
  });
});

// The supervisor's job store against a real nats-server: a step whose tasks change in a random order
// is saved as deltas of the changed records, compacted into chunks now and then, and always loads
// back exactly as it was saved, with no key left behind that the record does not reference.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { KV } from "@nats-io/kv";
import { TaskTableWriter, createTaskTable, getTask, type TaskTable } from "../../machines/task-table.js";
import type { TaskRecord } from "../../machines/task.machine.js";
import { openSnapshotBucket } from "../../src/nats/streams.js";
import { createSubjects } from "../../src/protocol/index.js";
import { JobStore, type StoredJob } from "../../services/supervisor/store.js";
import { startNatsServer, uniquePrefix, type NatsServerHandle } from "../support/nats-fixture.js";
import { prng } from "../unit/machines/helpers.js";

const N = 20_000;

function snapshotOf(tasks: TaskTable): Record<string, unknown> {
  return { status: "active", value: "running", context: { ntasks: tasks.size, tasks } };
}

async function keysOf(kv: KV): Promise<string[]> {
  const out: string[] = [];
  for await (const k of await kv.keys()) out.push(k);
  return out.sort();
}

async function recordOf(kv: KV, job: string): Promise<StoredJob<unknown>> {
  const e = await kv.get(`job.${job}`);
  return JSON.parse(new TextDecoder().decode(e!.value)) as StoredJob<unknown>;
}

function tableRecords(t: TaskTable): TaskRecord[] {
  return t.chunks.flat();
}

describe("JobStore", () => {
  let server: NatsServerHandle;
  let nc: NatsConnection;
  let kv: KV;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    kv = await openSnapshotBucket(nc, createSubjects(uniquePrefix("store")), { replicas: 1, retentionSeconds: 3600 });
  }, 30_000);
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it("saves random-order changes as deltas, compacts them into chunks, and loads back exactly", async () => {
    const store = new JobStore(kv);
    const rand = prng(7);
    let table = createTaskTable(N);
    let seq = 0;
    const save = () => store.save("9", { m: 1 }, ++seq, { value: "running", context: {} }, new Map([["0", snapshotOf(table)]]));
    await save();
    const first = await recordOf(kv, "9");
    expect(first.steps["0"]!.chunkKeys).toHaveLength(Math.ceil(N / 1024));
    expect(first.steps["0"]!.deltaKeys).toBeUndefined();

    // Every task changes twice (started, then ended), in a random order: more changed records than the
    // step has tasks, so the deltas are compacted into chunks at least once.
    const ranks = Array.from({ length: N }, (_, i) => i).sort(() => rand() - 0.5);
    const order = [...ranks, ...ranks.slice().sort(() => rand() - 0.5)];
    const seenDeltas = new Set<number>();
    let compactions = 0;
    let lastDeltaCount = 0;
    for (let done = 0; done < order.length; done += 2500) {
      const w = new TaskTableWriter(table);
      for (const r of order.slice(done, done + 2500)) {
        const was = getTask(table, r).state;
        w.set(r, was === "pending" ? ({ state: "running", context: { rank: r, killedByRuntime: false, pid: r } } as TaskRecord) : ({ state: "exited", context: { rank: r, killedByRuntime: false, pid: r, outcome: { kind: "exited", code: r % 5 } } } as TaskRecord));
      }
      table = w.finish();
      await save();
      const rec = await recordOf(kv, "9");
      const deltas = rec.steps["0"]!.deltaKeys?.length ?? 0;
      seenDeltas.add(deltas);
      if (deltas < lastDeltaCount) compactions++;
      lastDeltaCount = deltas;
      // Every key in the bucket is one the record references (stale ones are purged).
      const referenced = new Set([`job.9`, ...rec.steps["0"]!.chunkKeys, ...(rec.steps["0"]!.deltaKeys ?? [])]);
      await expect.poll(async () => (await keysOf(kv)).filter((k) => !referenced.has(k)), { timeout: 5_000 }).toEqual([]);
      // A fresh store (a restarted supervisor) loads exactly this table.
      const loaded = await new JobStore(kv).loadAll<unknown>();
      const tasks = (loaded.find((l) => l.record.jobId === "9")!.steps.get("0")!.context as { tasks: TaskTable }).tasks;
      expect(tasks.size).toBe(N);
      expect(tableRecords(tasks)).toEqual(tableRecords(table));
    }
    expect([...seenDeltas].some((d) => d > 0)).toBe(true);
    expect(compactions).toBeGreaterThan(0);
  }, 120_000);

  it("a store restarted with deltas pending keeps saving correctly", async () => {
    let table = createTaskTable(5000);
    const store = new JobStore(kv);
    let seq = 0;
    const save = (s: JobStore) => s.save("10", {}, ++seq, { value: "running", context: {} }, new Map([["0", snapshotOf(table)]]));
    await save(store);
    const change = (ranks: number[], code: number) => {
      const w = new TaskTableWriter(table);
      for (const r of ranks) w.set(r, { state: "exited", context: { rank: r, killedByRuntime: false, outcome: { kind: "exited", code } } } as TaskRecord);
      table = w.finish();
    };
    change([1, 2000, 4999], 3);
    await save(store);
    expect((await recordOf(kv, "10")).steps["0"]!.deltaKeys).toHaveLength(1);

    // Restart: load, then continue from the loaded table.
    const again = new JobStore(kv);
    const loaded = await again.loadAll<unknown>();
    table = (loaded.find((l) => l.record.jobId === "10")!.steps.get("0")!.context as { tasks: TaskTable }).tasks;
    change([7, 3000], 4);
    await save(again);
    change(Array.from({ length: 3000 }, (_, i) => i), 5);
    await save(again);
    expect((await recordOf(kv, "10")).steps["0"]!.deltaKeys).toHaveLength(4); // 3,000 records: 2 keys
    change(Array.from({ length: 3000 }, (_, i) => i), 6); // now more changed records than tasks: compaction
    await save(again);
    const rec = await recordOf(kv, "10");
    expect(rec.steps["0"]!.deltaKeys).toBeUndefined();
    const reloaded = await new JobStore(kv).loadAll<unknown>();
    const tasks = (reloaded.find((l) => l.record.jobId === "10")!.steps.get("0")!.context as { tasks: TaskTable }).tasks;
    expect(tableRecords(tasks)).toEqual(tableRecords(table));
    expect(getTask(tasks, 7).context.outcome).toEqual({ kind: "exited", code: 6 });
    expect(getTask(tasks, 3000).context.outcome).toEqual({ kind: "exited", code: 4 });
    expect(getTask(tasks, 4999).context.outcome).toEqual({ kind: "exited", code: 3 });
    expect(getTask(tasks, 4000).state).toBe("pending");
  }, 60_000);

  it("loads every job it can read back whole and names the damaged ones, leaving their keys as stored", async () => {
    const store = new JobStore(kv);
    const tableOf = (n: number) => new Map([["0", snapshotOf(createTaskTable(n))]]);
    await store.save("20", { m: "ok" }, 1, { value: "running", context: {} }, tableOf(3000));
    await store.save("21", { m: "chunk lost" }, 2, { value: "running", context: {} }, tableOf(3000));
    await store.save("22", { m: "bad delta" }, 3, { value: "running", context: {} }, tableOf(10));
    await store.save("23", { m: "not JSON" }, 4, { value: "running", context: {} }, tableOf(10));
    const lost = (await recordOf(kv, "21")).steps["0"]!.chunkKeys[1]!;
    await kv.purge(lost);
    const rec22 = await recordOf(kv, "22");
    const badDelta = "delta.22.0.999.0";
    await kv.put(badDelta, JSON.stringify([[5000, { state: "exited" }]]));
    await kv.put("job.22", JSON.stringify({ ...rec22, steps: { "0": { ...rec22.steps["0"]!, deltaKeys: [badDelta] } } }));
    await kv.put("job.23", "{not json");
    const rec20 = await recordOf(kv, "20");
    await kv.put("job.24", JSON.stringify({ ...rec20, jobId: "24", meta: undefined }));
    const short = "chunk.25.0.0.999";
    await kv.put(short, JSON.stringify([]));
    await kv.put("job.25", JSON.stringify({ ...rec20, jobId: "25", steps: { "0": { ...rec20.steps["0"]!, chunkKeys: [short, ...rec20.steps["0"]!.chunkKeys.slice(1)] } } }));
    const before = await keysOf(kv);

    const damaged = new Map<string, string>();
    const raws = new Map<string, unknown>();
    const loaded = await new JobStore(kv).loadAll<{ m: string }>((job, reason, raw) => {
      damaged.set(job, reason);
      raws.set(job, raw);
    });
    const ids = loaded.map((l) => l.record.jobId);
    expect(ids).toContain("20");
    expect(ids).not.toContain("21");
    expect(ids).not.toContain("22");
    expect(ids).not.toContain("23");
    expect(loaded.find((l) => l.record.jobId === "20")!.record.meta).toEqual({ m: "ok" });
    expect(damaged.get("21")).toBe(`job 21 step 0: missing task chunk ${lost}`);
    expect(damaged.get("22")).toBe(`job 22 step 0: task delta ${badDelta} holds rank 5000, outside the step`);
    expect(damaged.get("23")).toMatch(/^record job\.23 is not JSON: /);
    expect(damaged.get("24")).toBe("record job.24 has no meta");
    expect(damaged.get("25")).toBe(`job 25 step 0: task chunk ${short} holds 0 records, not the step's 1024`);
    expect(ids).not.toContain("24");
    expect(ids).not.toContain("25");
    expect(damaged.has("20")).toBe(false);
    // What could be read of a damaged record is handed over (the supervisor keeps its slots taken).
    expect((raws.get("21") as { meta: unknown }).meta).toEqual({ m: "chunk lost" });
    expect(raws.get("23")).toBeUndefined();
    // Nothing was written or removed by loading.
    expect(await keysOf(kv)).toEqual(before);
  }, 60_000);
});

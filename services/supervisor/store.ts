/**
 * Durable job records in a KV bucket. A job record holds the job's and its steps' persisted
 * snapshots and the stream sequence they cover; a step's task table is stored as separate chunks
 * (KV values are bounded by the payload limit), written under a new generation each time they
 * change and referenced from the record, so a crash between writes never leaves a record pointing
 * at newer chunks than its counters. Unchanged chunks (same object, copy-on-write) are not rewritten.
 */
import type { KV } from "@nats-io/kv";
import type { TaskRecord } from "../../machines/task.machine.js";
import type { TaskTable } from "../../machines/task-table.js";

/** A persisted step: its XState persisted snapshot with the task chunks replaced by keys. */
export interface StoredStep {
  readonly snapshot: Record<string, unknown>;
  readonly chunkKeys: readonly string[];
  readonly taskCount: number;
}

/** What a job's record holds. */
export interface StoredJob<M> {
  readonly jobId: string;
  readonly meta: M;
  /** Last event-stream sequence reflected in this record. */
  readonly seq: number;
  readonly job: Record<string, unknown>;
  readonly steps: Readonly<Record<string, StoredStep>>;
}

const JOB_KEY = (job: string) => `job.${job}`;
const CHUNK_KEY = (job: string, step: string, index: number, gen: number) => `chunk.${job}.${step}.${index}.${gen}`;
const COUNTER_KEY = "counter.job";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Reads and writes job records. */
export class JobStore {
  private readonly written = new Map<string, { chunks: readonly (readonly TaskRecord[])[]; keys: string[] }>();
  private generation = Date.now();

  constructor(private readonly kv: KV) {}

  /** Allocates the next job id (1, 2, 3 …) with compare-and-set, so two supervisors never share one. */
  async nextJobId(): Promise<string> {
    for (;;) {
      const entry = await this.kv.get(COUNTER_KEY);
      const current = entry && entry.operation === "PUT" ? Number(entry.string()) : 0;
      const next = current + 1;
      try {
        if (entry && entry.operation === "PUT") await this.kv.update(COUNTER_KEY, String(next), entry.revision);
        else await this.kv.create(COUNTER_KEY, String(next));
        return String(next);
      } catch (err) {
        if (!/wrong last sequence|key exists/i.test((err as Error).message)) throw err;
      }
    }
  }

  /** Writes a job: changed chunks first (under a fresh generation), then the record that points at them. */
  async save<M>(jobId: string, meta: M, seq: number, job: Record<string, unknown>, steps: ReadonlyMap<string, Record<string, unknown>>): Promise<void> {
    const stored: Record<string, StoredStep> = {};
    const stale: string[] = [];
    const gen = ++this.generation;
    for (const [stepId, snap] of steps) {
      const context = snap.context as { tasks: TaskTable } & Record<string, unknown>;
      const key = `${jobId}/${stepId}`;
      const before = this.written.get(key);
      const keys: string[] = [];
      const writes: Promise<unknown>[] = [];
      context.tasks.chunks.forEach((chunk, i) => {
        if (before && before.chunks[i] === chunk && before.keys[i]) {
          keys.push(before.keys[i]!);
          return;
        }
        const k = CHUNK_KEY(jobId, stepId, i, gen);
        keys.push(k);
        writes.push(this.kv.put(k, enc.encode(JSON.stringify(chunk))));
        if (before?.keys[i]) stale.push(before.keys[i]!);
      });
      await Promise.all(writes);
      this.written.set(key, { chunks: context.tasks.chunks, keys });
      stored[stepId] = { snapshot: { ...snap, context: { ...context, tasks: undefined } }, chunkKeys: keys, taskCount: context.tasks.size };
    }
    const record: StoredJob<M> = { jobId, meta, seq, job, steps: stored };
    await this.kv.put(JOB_KEY(jobId), enc.encode(JSON.stringify(record)));
    for (const k of stale) void this.kv.purge(k).catch(() => undefined);
  }

  /** Deletes a job's record and task chunks. */
  async remove(jobId: string, steps: readonly string[]): Promise<void> {
    await this.kv.purge(JOB_KEY(jobId));
    for (const stepId of steps) {
      const w = this.written.get(`${jobId}/${stepId}`);
      for (const k of w?.keys ?? []) await this.kv.purge(k);
      this.written.delete(`${jobId}/${stepId}`);
    }
  }

  /** Every stored job, with their steps' task tables put back into their snapshots. */
  async loadAll<M>(): Promise<{ record: StoredJob<M>; steps: Map<string, Record<string, unknown>> }[]> {
    const keys: string[] = [];
    for await (const k of await this.kv.keys("job.*")) keys.push(k);
    const out: { record: StoredJob<M>; steps: Map<string, Record<string, unknown>> }[] = [];
    for (const k of keys) {
      const entry = await this.kv.get(k);
      if (!entry || entry.operation !== "PUT") continue;
      const record = JSON.parse(dec.decode(entry.value)) as StoredJob<M>;
      const steps = new Map<string, Record<string, unknown>>();
      for (const [stepId, s] of Object.entries(record.steps)) {
        const chunks: TaskRecord[][] = [];
        for (const ck of s.chunkKeys) {
          const c = await this.kv.get(ck);
          if (!c || c.operation !== "PUT") throw new Error(`job ${record.jobId} step ${stepId}: missing task chunk ${ck}`);
          chunks.push(JSON.parse(dec.decode(c.value)) as TaskRecord[]);
        }
        const tasks: TaskTable = { size: s.taskCount, chunks };
        this.written.set(`${record.jobId}/${stepId}`, { chunks, keys: [...s.chunkKeys] });
        const snap = s.snapshot as { context: Record<string, unknown> };
        steps.set(stepId, { ...snap, context: { ...snap.context, tasks } });
      }
      out.push({ record, steps });
    }
    return out;
  }
}

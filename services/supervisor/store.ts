/**
 * Durable job records in a KV bucket. A job record holds the job's and its steps' persisted
 * snapshots and the stream sequence they cover; a step's task table is stored as separate chunks
 * (KV values are bounded by the payload limit), written under a new generation each time they
 * change and referenced from the record, so a crash between writes never leaves a record pointing
 * at newer chunks than its counters. Unchanged chunks (same object, copy-on-write) are not rewritten.
 *
 * Between rewrites of chunks, a save writes only the task records that changed since the previous save
 * (found by identity: records are immutable) as delta keys of at most DELTA_MAX_RECORDS records,
 * listed in the record after the chunks and applied in order on load. Once the deltas add up to as
 * many records as the step has tasks, at least 4,096 (or there are MAX_DELTAS keys), the chunks that differ from what
 * is stored are rewritten and the deltas dropped. Tasks ending in a random order touch every chunk;
 * this keeps a save of a 100,000-task step about the size of what changed instead of the whole table,
 * and stores every record about twice over the step's life instead of once per save.
 */
import type { KV } from "@nats-io/kv";
import type { TaskRecord } from "../../machines/task.machine.js";
import { TASK_CHUNK_SIZE, type TaskTable } from "../../machines/task-table.js";

/** A persisted step: its XState persisted snapshot with the task chunks replaced by keys. */
export interface StoredStep {
  readonly snapshot: Record<string, unknown>;
  readonly chunkKeys: readonly string[];
  /** Changed records written since the chunks, applied in this order on load (absent: none). */
  readonly deltaKeys?: readonly string[];
  readonly taskCount: number;
}

/** What was last written of one step. */
interface Written {
  /** The chunks as of the last save (identity tells what changed since). */
  chunks: readonly (readonly TaskRecord[])[];
  /**
   * Chunks whose stored content (under `keys`) is older than memory: their changes are in deltas.
   * (Only indexes are kept: holding the stored chunks themselves would keep a second copy of every
   * changed record alive.)
   */
  dirty: ReadonlySet<number>;
  keys: string[];
  deltaKeys: string[];
  deltaRecords: number;
}

/** Most records one delta key holds (about 200 bytes each, far below the payload limit). */
const DELTA_MAX_RECORDS = 2048;
/** Most delta keys of one step before its chunks are rewritten. */
const MAX_DELTAS = 256;

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
const DELTA_KEY = (job: string, step: string, gen: number, part: number) => `delta.${job}.${step}.${gen}.${part}`;
const COUNTER_KEY = "counter.job";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Reads and writes job records. */
export class JobStore {
  private readonly written = new Map<string, Written>();
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

  /** Writes a job: changed records or chunks first (under a fresh generation), then the record that points at them. */
  async save<M>(jobId: string, meta: M, seq: number, job: Record<string, unknown>, steps: ReadonlyMap<string, Record<string, unknown>>): Promise<void> {
    const stored: Record<string, StoredStep> = {};
    const stale: string[] = [];
    const gen = ++this.generation;
    const writes: Promise<unknown>[] = [];
    for (const [stepId, snap] of steps) {
      const context = snap.context as { tasks: TaskTable } & Record<string, unknown>;
      const table = context.tasks;
      const key = `${jobId}/${stepId}`;
      const before = this.written.get(key);
      const after = before ? this.saveDelta(jobId, stepId, table, before, gen, writes) : undefined;
      const w = after ?? this.saveChunks(jobId, stepId, table, before, gen, writes, stale);
      this.written.set(key, w);
      stored[stepId] = {
        snapshot: { ...snap, context: { ...context, tasks: undefined } },
        chunkKeys: [...w.keys],
        ...(w.deltaKeys.length ? { deltaKeys: [...w.deltaKeys] } : {}),
        taskCount: table.size,
      };
    }
    try {
      await Promise.all(writes);
    } catch (err) {
      // What was written is unknown: the next save of this job rewrites its chunks.
      for (const stepId of steps.keys()) this.written.delete(`${jobId}/${stepId}`);
      throw err;
    }
    const record: StoredJob<M> = { jobId, meta, seq, job, steps: stored };
    await this.kv.put(JOB_KEY(jobId), enc.encode(JSON.stringify(record)));
    for (const k of stale) void this.kv.purge(k).catch(() => undefined);
  }

  /** Writes the records changed since the last save as delta keys; undefined when the chunks should be rewritten instead. */
  private saveDelta(jobId: string, stepId: string, table: TaskTable, before: Written, gen: number, writes: Promise<unknown>[]): Written | undefined {
    if (before.chunks.length !== table.chunks.length) return undefined;
    const changed: [number, TaskRecord][] = [];
    const limit = Math.max(2 * DELTA_MAX_RECORDS, table.size) - before.deltaRecords;
    for (let i = 0; i < table.chunks.length; i++) {
      const now = table.chunks[i]!;
      const then = before.chunks[i]!;
      if (now === then) continue;
      for (let j = 0; j < now.length; j++) {
        if (now[j] !== then[j]) changed.push([i * TASK_CHUNK_SIZE + j, now[j]!]);
      }
      if (changed.length > limit) return undefined;
    }
    if (!changed.length) return { ...before, chunks: table.chunks };
    const dirty = new Set(before.dirty);
    for (const [rank] of changed) dirty.add(Math.floor(rank / TASK_CHUNK_SIZE));
    const parts = Math.ceil(changed.length / DELTA_MAX_RECORDS);
    if (before.deltaKeys.length + parts > MAX_DELTAS) return undefined;
    const deltaKeys = [...before.deltaKeys];
    for (let p = 0; p < parts; p++) {
      const k = DELTA_KEY(jobId, stepId, gen, p);
      deltaKeys.push(k);
      writes.push(this.kv.put(k, enc.encode(JSON.stringify(changed.slice(p * DELTA_MAX_RECORDS, (p + 1) * DELTA_MAX_RECORDS)))));
    }
    return { ...before, chunks: table.chunks, dirty, deltaKeys, deltaRecords: before.deltaRecords + changed.length };
  }

  /** Rewrites every chunk that differs from what its key holds; the step's deltas become stale. */
  private saveChunks(jobId: string, stepId: string, table: TaskTable, before: Written | undefined, gen: number, writes: Promise<unknown>[], stale: string[]): Written {
    const keys: string[] = [];
    table.chunks.forEach((chunk, i) => {
      const old = before?.keys[i];
      if (old && before.chunks[i] === chunk && !before.dirty.has(i)) {
        keys.push(old);
        return;
      }
      const k = CHUNK_KEY(jobId, stepId, i, gen);
      keys.push(k);
      writes.push(this.kv.put(k, enc.encode(JSON.stringify(chunk))));
      if (old) stale.push(old);
    });
    if (before) stale.push(...before.deltaKeys, ...before.keys.slice(table.chunks.length));
    return { chunks: table.chunks, dirty: new Set(), keys, deltaKeys: [], deltaRecords: 0 };
  }

  /** Deletes a job's record and task chunks. */
  async remove(jobId: string, steps: readonly string[]): Promise<void> {
    await this.kv.purge(JOB_KEY(jobId));
    for (const stepId of steps) {
      const w = this.written.get(`${jobId}/${stepId}`);
      for (const k of [...(w?.keys ?? []), ...(w?.deltaKeys ?? [])]) await this.kv.purge(k);
      this.written.delete(`${jobId}/${stepId}`);
    }
  }

  /**
   * Every stored job, with their steps' task tables put back into their snapshots. A job whose
   * record cannot be read back whole (not JSON, not shaped like a record, a chunk or delta missing
   * or unreadable) is not loaded: it goes to `onDamaged` with the reason and what could be read of
   * its record, its keys stay as they are for an operator to inspect, and the other jobs load. A
   * failure to read at all (a timeout, no JetStream) is not damage: it is thrown, and nothing loads.
   */
  async loadAll<M>(onDamaged: (jobId: string, reason: string, record: unknown) => void = () => undefined): Promise<LoadedJob<M>[]> {
    const keys: string[] = [];
    for await (const k of await this.kv.keys("job.*")) keys.push(k);
    const out: LoadedJob<M>[] = [];
    for (const k of keys) {
      const entry = await this.kv.get(k);
      if (!entry || entry.operation !== "PUT") continue;
      const jobId = k.slice("job.".length);
      let raw: unknown;
      try {
        raw = JSON.parse(dec.decode(entry.value));
      } catch (err) {
        onDamaged(jobId, `record ${k} is not JSON: ${(err as Error).message}`, undefined);
        continue;
      }
      try {
        out.push(await this.loadOne<M>(jobId, raw));
      } catch (err) {
        if (!(err instanceof DamagedRecord)) throw err;
        onDamaged(jobId, err.message, raw);
      }
    }
    return out;
  }

  private async loadOne<M>(jobId: string, raw: unknown): Promise<LoadedJob<M>> {
    const shapeError = recordShapeError(jobId, raw);
    if (shapeError) throw new DamagedRecord(`record job.${jobId} ${shapeError}`);
    const record = raw as StoredJob<M>;
    // New keys must never take the name of a key a stored record uses (the clock may be behind the counter).
    for (const s of Object.values(record.steps)) {
      for (const key of [...s.chunkKeys, ...(s.deltaKeys ?? [])]) {
        const gen = Number(/^(?:chunk\.[^.]+\.[^.]+\.\d+|delta\.[^.]+\.[^.]+)\.(\d+)/.exec(key)?.[1] ?? 0);
        if (gen > this.generation) this.generation = gen;
      }
    }
    const steps = new Map<string, Record<string, unknown>>();
    const written: [string, Written][] = [];
    for (const [stepId, s] of Object.entries(record.steps)) {
      const where = `job ${jobId} step ${stepId}`;
      const chunks: TaskRecord[][] = [];
      for (const [i, ck] of s.chunkKeys.entries()) {
        const c = await this.kv.get(ck);
        if (!c || c.operation !== "PUT") throw new DamagedRecord(`${where}: missing task chunk ${ck}`);
        const chunk = parseStored<TaskRecord[]>(c.value, `${where}: task chunk ${ck}`);
        if (chunk.length !== Math.min(TASK_CHUNK_SIZE, s.taskCount - i * TASK_CHUNK_SIZE)) {
          throw new DamagedRecord(`${where}: task chunk ${ck} holds ${chunk.length} records, not the step's ${Math.min(TASK_CHUNK_SIZE, s.taskCount - i * TASK_CHUNK_SIZE)}`);
        }
        chunks.push(chunk);
      }
      const dirty = new Set<number>();
      let deltaRecords = 0;
      for (const dk of s.deltaKeys ?? []) {
        const d = await this.kv.get(dk);
        if (!d || d.operation !== "PUT") throw new DamagedRecord(`${where}: missing task delta ${dk}`);
        for (const entry of parseStored<[number, TaskRecord][]>(d.value, `${where}: task delta ${dk}`)) {
          const rank = Array.isArray(entry) ? entry[0] : undefined;
          if (!Number.isInteger(rank) || rank! < 0 || rank! >= s.taskCount) throw new DamagedRecord(`${where}: task delta ${dk} holds rank ${JSON.stringify(rank)}, outside the step`);
          const i = Math.floor(rank! / TASK_CHUNK_SIZE);
          chunks[i]![rank! % TASK_CHUNK_SIZE] = entry[1];
          dirty.add(i); // stored content differs from memory: rewritten at the next compaction
          deltaRecords++;
        }
      }
      const tasks: TaskTable = { size: s.taskCount, chunks };
      written.push([`${jobId}/${stepId}`, { chunks, dirty, keys: [...s.chunkKeys], deltaKeys: [...(s.deltaKeys ?? [])], deltaRecords }]);
      const snap = s.snapshot as { context: Record<string, unknown> };
      steps.set(stepId, { ...snap, context: { ...snap.context, tasks } });
    }
    // Only a job loaded whole is tracked: a damaged one is left as it is stored.
    for (const [key, w] of written) this.written.set(key, w);
    return { record, steps };
  }
}

/** A stored job loaded back: its record, and each step's persisted snapshot with its task table. */
export interface LoadedJob<M> {
  readonly record: StoredJob<M>;
  readonly steps: Map<string, Record<string, unknown>>;
}

/** A stored record that cannot be read back whole (as opposed to a failure to read it). */
class DamagedRecord extends Error {}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");

/** What is wrong with the shape of a stored job record, or undefined when it is shaped right. */
function recordShapeError(jobId: string, r: unknown): string | undefined {
  if (!isObject(r)) return "is not an object";
  if (r.jobId !== jobId) return `names job ${JSON.stringify(r.jobId)}, not ${jobId}`;
  if (!isObject(r.meta)) return "has no meta";
  if (typeof r.seq !== "number" || !Number.isInteger(r.seq) || r.seq < 0) return "has no stream sequence (seq)";
  if (!isObject(r.job) || typeof r.job.value !== "string" || !isObject(r.job.context)) return "has no job snapshot";
  if (!isObject(r.steps)) return "has no steps";
  for (const [stepId, s] of Object.entries(r.steps)) {
    if (!isObject(s) || !isObject(s.snapshot) || !isObject(s.snapshot.context)) return `step ${stepId} has no snapshot`;
    if (typeof s.taskCount !== "number" || !Number.isInteger(s.taskCount) || s.taskCount < 0) return `step ${stepId} has no task count`;
    if (!isStringList(s.chunkKeys) || s.chunkKeys.length !== Math.ceil(s.taskCount / TASK_CHUNK_SIZE)) return `step ${stepId} does not list one chunk key per ${TASK_CHUNK_SIZE} tasks`;
    if (s.deltaKeys !== undefined && !isStringList(s.deltaKeys)) return `step ${stepId} has a malformed delta key list`;
  }
  return undefined;
}

/** A stored JSON array, or a DamagedRecord naming what it is. */
function parseStored<T extends unknown[]>(value: Uint8Array, what: string): T {
  let v: unknown;
  try {
    v = JSON.parse(dec.decode(value));
  } catch (err) {
    throw new DamagedRecord(`${what} is not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(v)) throw new DamagedRecord(`${what} is not a list`);
  return v as T;
}

/**
 * A step's tasks held as a copy-on-write table of fixed-size chunks: an update copies only the
 * chunks it touches, so snapshots stay immutable (pure transitions) without copying 100,000 records
 * per event, and only changed chunks need persisting.
 */
import { initialTaskRecord, type TaskRecord } from "./task.machine.js";

/** Records per chunk. */
export const TASK_CHUNK_SIZE = 1024;

/** An immutable table of task records, indexed by rank. */
export interface TaskTable {
  readonly size: number;
  readonly chunks: readonly (readonly TaskRecord[])[];
}

/** A table of `size` tasks, all pending. */
export function createTaskTable(size: number): TaskTable {
  const chunks: TaskRecord[][] = [];
  for (let lo = 0; lo < size; lo += TASK_CHUNK_SIZE) {
    const chunk: TaskRecord[] = [];
    for (let r = lo; r < Math.min(size, lo + TASK_CHUNK_SIZE); r++) chunk.push(initialTaskRecord(r));
    chunks.push(chunk);
  }
  return { size, chunks };
}

/** The record of one rank; throws a RangeError for a rank outside the table. */
export function getTask(table: TaskTable, rank: number): TaskRecord {
  const rec = Number.isInteger(rank) && rank >= 0 ? table.chunks[Math.floor(rank / TASK_CHUNK_SIZE)]?.[rank % TASK_CHUNK_SIZE] : undefined;
  if (!rec) throw new RangeError(`rank ${rank} is not in a step of ${table.size} tasks`);
  return rec;
}

/** True when `rank` is a task of the table. */
export function hasRank(table: TaskTable, rank: number): boolean {
  return Number.isInteger(rank) && rank >= 0 && rank < table.size;
}

/** Every record in rank order. */
export function* allTasks(table: TaskTable): IterableIterator<TaskRecord> {
  for (const chunk of table.chunks) yield* chunk;
}

/** Applies many updates to a table, copying each touched chunk once; the original is left untouched. */
export class TaskTableWriter {
  private chunks: (readonly TaskRecord[])[] | undefined;
  private readonly copied = new Set<number>();

  constructor(private readonly base: TaskTable) {}

  /** The current record of `rank` (with this writer's updates). */
  get(rank: number): TaskRecord {
    return getTask(this.chunks ? { size: this.base.size, chunks: this.chunks } : this.base, rank);
  }

  /** Replaces the record of `rank`. */
  set(rank: number, record: TaskRecord): void {
    const c = Math.floor(rank / TASK_CHUNK_SIZE);
    this.chunks ??= this.base.chunks.slice();
    if (!this.copied.has(c)) {
      this.chunks[c] = this.chunks[c]!.slice();
      this.copied.add(c);
    }
    (this.chunks[c] as TaskRecord[])[rank % TASK_CHUNK_SIZE] = record;
  }

  /** Indexes of the chunks this writer changed. */
  get changedChunks(): ReadonlySet<number> {
    return this.copied;
  }

  /** The updated table (the base itself when nothing changed). */
  finish(): TaskTable {
    return this.chunks ? { size: this.base.size, chunks: this.chunks } : this.base;
  }
}

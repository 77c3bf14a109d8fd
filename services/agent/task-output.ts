/**
 * A task's stdout and stderr forwarded as `io.chunk` messages on `<p>.io.<job>.<step>.<task>`:
 * in order, at most 64 KiB of output per chunk, `seq` counting from 0 per stream, `offset` the
 * stream position of the chunk's first byte, UTF-8 text (or base64 when the bytes are not valid
 * UTF-8), and a last chunk with `eof: true` per stream.
 *
 * A fast writer is slowed down, not cut: once `highWaterBytes` wait to be published, `write` returns
 * a promise and the caller stops reading the task's pipe until it settles (the task then blocks in
 * write(2), as under srun's I/O forwarding). Only output that comes when nothing can slow the writer
 * (after the task's own process ended, a background child still writing) is dropped beyond
 * `maxPendingBytes`; every dropped or unpublishable byte is counted (`lostBytes`, reported in
 * `task.ended`) and shows as a jump of `offset` to whoever reads the chunks.
 */
import { isUtf8 } from "node:buffer";
import type { WriteStream } from "node:fs";
import type { JetStreamClient } from "@nats-io/jetstream";
import type { Logger } from "../../src/logger.js";
import type { IoChunk, IoStream, StepId, Subjects } from "../../src/protocol/index.js";
import { IO_STREAMS, PROTOCOL_VERSION, encodeMessage } from "../../src/protocol/index.js";
import { publishUntilAcked } from "./outbox.js";

/** Largest piece of output in one chunk, bytes. */
export const IO_CHUNK_BYTES = 64 * 1024;
/** Output waiting to be published per task at which the task's pipe is no longer read, bytes. */
export const IO_HIGH_WATER_BYTES = 256 * 1024;
/** Output waiting to be published at which reading the task's pipe resumes, bytes. */
export const IO_LOW_WATER_BYTES = 64 * 1024;
/** Output waiting to be published per task beyond which output that cannot be slowed down is dropped, bytes. */
export const IO_MAX_PENDING_BYTES = 8 * 1024 * 1024;
/** A UTF-8 chunk whose JSON grows beyond this (escapes) is sent as base64 instead; the IO stream takes 256 KiB. */
const IO_MAX_MESSAGE_BYTES = 192 * 1024;
/** How long an IO publish may fail while connected (no IO stream) before that chunk is given up. */
const IO_GIVE_UP_MS = 10_000;

/** What a TaskOutput publishes for. */
export interface TaskOutputOptions {
  readonly js: JetStreamClient;
  readonly subjects: Subjects;
  readonly job: string;
  readonly step: StepId;
  readonly rank: number;
  readonly epoch: string;
  readonly logger: Logger;
  /** Aborted when the agent closes: pending output is then dropped. */
  readonly signal: AbortSignal;
  readonly ackTimeoutMs: number;
  readonly isConnected: () => boolean;
  /** Streams written to a file instead of being published (batch `output`/`error`); their eof chunk is still sent. */
  readonly files?: Partial<Record<IoStream, WriteStream>>;
  readonly maxPendingBytes?: number;
  readonly highWaterBytes?: number;
  readonly lowWaterBytes?: number;
}

type Segment = { readonly stream: IoStream; data: Buffer } | { readonly stream: IoStream; gap: number } | { readonly stream: IoStream; readonly eof: true };

/** The message id of an output chunk, so a retried publish is stored once. */
export function ioChunkMsgId(job: string, step: StepId, rank: number, epoch: string, stream: IoStream, seq: number): string {
  return `${job}.${step}.${rank}.${epoch}.${stream}.${seq}`;
}

/** Forwards one task's output; `end()` resolves once both eof chunks were acknowledged (or given up). */
export class TaskOutput {
  private readonly queue: Segment[] = [];
  private readonly seq: Record<IoStream, number> = { stdout: 0, stderr: 0 };
  /** An incomplete UTF-8 sequence held back until the stream's next bytes. */
  private readonly carry: Record<IoStream, Buffer | undefined> = { stdout: undefined, stderr: undefined };
  /** Stream position of the next byte to publish (the carry's first byte, if any); dropped bytes count. */
  private readonly pos: Record<IoStream, number> = { stdout: 0, stderr: 0 };
  private readonly subject: string;
  private pending = 0;
  private lost = 0;
  /** Writers waiting for the pending output to fall to the low-water mark. */
  private waiters: (() => void)[] = [];
  private pumping = false;
  private ending: Promise<void> | undefined;
  private finish: (() => void) | undefined;

  constructor(private readonly opts: TaskOutputOptions) {
    this.subject = opts.subjects.io.task(opts.job, opts.step, opts.rank);
  }

  /** Bytes of output lost: dropped because too much was waiting, or never acknowledged by JetStream. */
  get lostBytes(): number {
    return this.lost;
  }

  /**
   * Takes a piece of output from the task. Returns a promise when the caller should stop reading the
   * task's output until it settles (too much waits to be published, or a file is slow to take it).
   */
  write(stream: IoStream, data: Buffer): Promise<void> | undefined {
    if (this.ending || data.length === 0) return undefined;
    const file = this.opts.files?.[stream];
    if (file) {
      if (file.write(data) || file.destroyed) return undefined;
      return new Promise((resolve) => {
        const done = (): void => {
          file.off("drain", done);
          file.off("close", done);
          resolve();
        };
        file.on("drain", done);
        file.on("close", done);
      });
    }
    if (this.pending + data.length > (this.opts.maxPendingBytes ?? IO_MAX_PENDING_BYTES)) {
      if (this.lost === 0) this.opts.logger.warn({ stream }, "io.dropped");
      this.lost += data.length;
      const tail = this.queue.at(-1);
      if (tail && "gap" in tail && tail.stream === stream) tail.gap += data.length;
      else this.queue.push({ stream, gap: data.length });
      return undefined;
    }
    this.pending += data.length;
    const tail = this.queue.at(-1);
    if (tail && "data" in tail && tail.stream === stream && tail.data.length + data.length <= IO_CHUNK_BYTES) {
      tail.data = Buffer.concat([tail.data, data]);
    } else {
      this.queue.push({ stream, data });
    }
    this.kick();
    if (this.pending < (this.opts.highWaterBytes ?? IO_HIGH_WATER_BYTES)) return undefined;
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  // Lets waiting writers go on once the pending output is down to the low-water mark (or nothing can be sent any more).
  private release(force = false): void {
    if (this.waiters.length === 0) return;
    if (!force && this.pending > (this.opts.lowWaterBytes ?? IO_LOW_WATER_BYTES) && !this.opts.signal.aborted) return;
    for (const w of this.waiters.splice(0)) w();
  }

  /** Flushes what is left, closes the files, and publishes both eof chunks. */
  end(): Promise<void> {
    this.ending ??= (async () => {
      for (const f of Object.values(this.opts.files ?? {})) {
        await new Promise<void>((resolve) => f.end(() => resolve()));
      }
      this.release(true);
      const done = new Promise<void>((resolve) => (this.finish = resolve));
      for (const stream of IO_STREAMS) this.queue.push({ stream, eof: true });
      this.kick();
      await done;
    })();
    return this.ending;
  }

  private kick(): void {
    if (this.pumping) return;
    this.pumping = true;
    void this.pump();
  }

  private async pump(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const head = this.queue[0]!;
        if ("gap" in head) {
          this.queue.shift();
          // What was held back before the gap goes out on its own (as base64): bytes after the gap are no continuation of it.
          const carry = this.carry[head.stream];
          this.carry[head.stream] = undefined;
          if (carry) await this.publish(head.stream, carry, false);
          this.pos[head.stream] += head.gap;
          continue;
        }
        if ("eof" in head) {
          this.queue.shift();
          const rest = this.carry[head.stream] ?? Buffer.alloc(0);
          this.carry[head.stream] = undefined;
          await this.publish(head.stream, rest, true);
          if (this.queue.length === 0) this.finish?.();
          continue;
        }
        const chunk = this.take(head.stream);
        if (chunk.length > 0) await this.publish(head.stream, chunk, false);
        this.release();
      }
    } finally {
      this.pumping = false;
      this.release(this.opts.signal.aborted);
    }
  }

  // Up to IO_CHUNK_BYTES of consecutive output of one stream, prefixed by its carry, without a
  // trailing incomplete UTF-8 character (kept as the carry for the next chunk or the eof chunk).
  private take(stream: IoStream): Buffer {
    const parts: Buffer[] = [];
    const carry = this.carry[stream];
    let size = carry?.length ?? 0;
    if (carry) parts.push(carry);
    while (size < IO_CHUNK_BYTES) {
      const head = this.queue[0];
      if (!head || head.stream !== stream || !("data" in head)) break;
      const room = IO_CHUNK_BYTES - size;
      if (head.data.length <= room) {
        this.queue.shift();
        parts.push(head.data);
        size += head.data.length;
        this.pending -= head.data.length;
      } else {
        parts.push(head.data.subarray(0, room));
        head.data = head.data.subarray(room);
        size += room;
        this.pending -= room;
      }
    }
    const all = parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
    const cut = incompleteUtf8Tail(all);
    this.carry[stream] = cut < all.length ? Buffer.from(all.subarray(cut)) : undefined;
    return all.subarray(0, cut);
  }

  private async publish(stream: IoStream, data: Buffer, eof: boolean): Promise<void> {
    const seq = this.seq[stream]++;
    const offset = this.pos[stream];
    this.pos[stream] += data.length;
    const base = { type: "io.chunk", v: PROTOCOL_VERSION, job: this.opts.job, step: this.opts.step, rank: this.opts.rank, stream, seq, offset, at: Date.now() } as const;
    const extra = eof ? { eof: true } : {};
    let bytes: Uint8Array | undefined;
    if (isUtf8(data)) {
      const chunk: IoChunk = { ...base, data: data.toString("utf8"), ...extra };
      bytes = encodeMessage(chunk);
      if (bytes.byteLength > IO_MAX_MESSAGE_BYTES) bytes = undefined;
    }
    if (!bytes) {
      const chunk: IoChunk = { ...base, data: data.toString("base64"), encoding: "base64", ...extra };
      bytes = encodeMessage(chunk);
    }
    const ok = await publishUntilAcked(this.opts.js, this.subject, bytes, ioChunkMsgId(this.opts.job, this.opts.step, this.opts.rank, this.opts.epoch, stream, seq), {
      signal: this.opts.signal,
      logger: this.opts.logger,
      ackTimeoutMs: this.opts.ackTimeoutMs,
      giveUpAfterMs: IO_GIVE_UP_MS,
      isConnected: this.opts.isConnected,
    });
    if (!ok && !this.opts.signal.aborted) {
      this.lost += data.length;
      this.opts.logger.warn({ stream, seq, eof, bytes: data.length }, "io.chunk_lost");
    }
  }
}

/** Where a trailing incomplete UTF-8 sequence starts (the length when there is none). */
export function incompleteUtf8Tail(buf: Uint8Array): number {
  const n = buf.length;
  for (let back = 1; back <= Math.min(3, n); back++) {
    const b = buf[n - back]!;
    if ((b & 0xc0) === 0x80) continue; // continuation byte: look further back
    const need = b >= 0xf0 ? (b <= 0xf4 ? 4 : 1) : b >= 0xe0 ? 3 : b >= 0xc2 ? 2 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

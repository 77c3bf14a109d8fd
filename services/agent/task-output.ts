/**
 * A task's stdout and stderr forwarded as `io.chunk` messages on `<p>.io.<job>.<step>.<task>`:
 * in order, at most 64 KiB of output per chunk, `seq` counting from 0 per stream, UTF-8 text
 * (or base64 when the bytes are not valid UTF-8), and a last chunk with `eof: true` per stream.
 * Output is best-effort and bounded: beyond `maxPendingBytes` waiting to be published, new output
 * is dropped and the skipped `seq` shows the gap.
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
/** Output waiting to be published per task before new output is dropped, bytes. */
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
}

type Segment = { readonly stream: IoStream; data: Buffer } | { readonly stream: IoStream; readonly gap: true } | { readonly stream: IoStream; readonly eof: true };

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
  private readonly subject: string;
  private pending = 0;
  private dropped = 0;
  private pumping = false;
  private ending: Promise<void> | undefined;
  private finish: (() => void) | undefined;

  constructor(private readonly opts: TaskOutputOptions) {
    this.subject = opts.subjects.io.task(opts.job, opts.step, opts.rank);
  }

  /** Bytes of output dropped because too much was waiting. */
  get droppedBytes(): number {
    return this.dropped;
  }

  /** Takes a piece of output from the task. */
  write(stream: IoStream, data: Buffer): void {
    if (this.ending || data.length === 0) return;
    const file = this.opts.files?.[stream];
    if (file) {
      file.write(data);
      return;
    }
    if (this.pending + data.length > (this.opts.maxPendingBytes ?? IO_MAX_PENDING_BYTES)) {
      if (this.dropped === 0) this.opts.logger.warn({ stream }, "io.dropped");
      this.dropped += data.length;
      const tail = this.queue.at(-1);
      if (!(tail && "gap" in tail && tail.stream === stream)) this.queue.push({ stream, gap: true });
      return;
    }
    this.pending += data.length;
    const tail = this.queue.at(-1);
    if (tail && "data" in tail && tail.stream === stream && tail.data.length + data.length <= IO_CHUNK_BYTES) {
      tail.data = Buffer.concat([tail.data, data]);
    } else {
      this.queue.push({ stream, data });
    }
    this.kick();
  }

  /** Flushes what is left, closes the files, and publishes both eof chunks. */
  end(): Promise<void> {
    this.ending ??= (async () => {
      for (const f of Object.values(this.opts.files ?? {})) {
        await new Promise<void>((resolve) => f.end(() => resolve()));
      }
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
          this.seq[head.stream]++;
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
      }
    } finally {
      this.pumping = false;
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
    const base = { type: "io.chunk", v: PROTOCOL_VERSION, job: this.opts.job, step: this.opts.step, rank: this.opts.rank, stream, seq, at: Date.now() } as const;
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
    if (!ok && !this.opts.signal.aborted) this.opts.logger.warn({ stream, seq, eof }, "io.chunk_lost");
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

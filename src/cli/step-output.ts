/**
 * The output of a step's tasks as `muster run` passes it on: the bytes of each `io.chunk`, exactly
 * as the task wrote them (base64 chunks decoded to bytes, never to text), to wherever the task's
 * stream goes; with `--label`, each line prefixed with `RANK: ` at the byte level. It also keeps the
 * account srun's users need: which task lost how many bytes on the way (a jump of the chunks'
 * `offset`), and which streams ended (`eof`).
 */
import type { IoChunk, IoStream } from "../protocol/index.js";

/** Where one task stream's bytes go. */
export interface OutputTarget {
  write(data: Uint8Array): void;
}

/** Bytes a task stream lost on the way; `bytes` undefined when only a gap in `seq` says so (an agent without offsets). */
export interface OutputLoss {
  readonly rank: number;
  readonly stream: IoStream;
  readonly bytes: number | undefined;
}

interface StreamState {
  nextSeq: number;
  /** Stream position of the next byte expected. */
  pos: number;
  lost: number;
  unknownGap: boolean;
  eof: boolean;
  /** With --label: the start of a line not yet ended. */
  partial: Buffer | undefined;
}

const NEWLINE = 0x0a;

/** Passes a step's task output on, in order per task stream; see the module comment. */
export class StepOutput {
  private readonly streams = new Map<string, StreamState>();

  constructor(
    private readonly opts: {
      readonly label: boolean;
      /** Width the rank is padded to in a label, as srun -l pads it to the highest rank's (` 0: ` among 11 tasks). */
      readonly labelWidth?: number;
      /** Where a task stream goes; undefined discards it. */
      readonly target: (rank: number, stream: IoStream) => OutputTarget | undefined;
    },
  ) {}

  /** Takes the next chunk of the step (chunks of one task stream come in `seq` order; one seen before is ignored). */
  take(c: IoChunk): void {
    const key = `${c.rank}/${c.stream}`;
    let st = this.streams.get(key);
    if (!st) this.streams.set(key, (st = { nextSeq: 0, pos: 0, lost: 0, unknownGap: false, eof: false, partial: undefined }));
    if (c.seq < st.nextSeq || st.eof) return;
    let data = c.encoding === "base64" ? Buffer.from(c.data, "base64") : Buffer.from(c.data, "utf8");
    if (c.offset !== undefined) {
      if (c.offset > st.pos) st.lost += c.offset - st.pos;
      else if (c.offset < st.pos) data = data.subarray(Math.min(data.length, st.pos - c.offset));
      st.pos = Math.max(st.pos, c.offset);
    } else if (c.seq > st.nextSeq) {
      st.unknownGap = true;
    }
    st.pos += data.length;
    st.nextSeq = c.seq + 1;
    const target = this.opts.target(c.rank, c.stream);
    if (!this.opts.label) {
      if (data.length > 0) target?.write(data);
    } else {
      const out = this.labelled(c.rank, st, data, c.eof === true);
      if (out.length > 0) target?.write(out);
    }
    if (c.eof) st.eof = true;
  }

  /** Writes what is left of unfinished labelled lines (of streams whose end never came), each ended by a newline. */
  flush(): void {
    for (const [key, st] of this.streams) {
      if (!st.partial) continue;
      const [rank, stream] = key.split("/") as [string, IoStream];
      const rest = st.partial;
      st.partial = undefined;
      this.opts.target(Number(rank), stream)?.write(Buffer.concat([this.prefix(Number(rank)), rest, Buffer.from("\n")]));
    }
  }

  /** True once the last chunk of this task stream was taken. */
  ended(rank: number, stream: IoStream): boolean {
    return this.streams.get(`${rank}/${stream}`)?.eof === true;
  }

  /** How many task streams have ended (their last chunk taken). */
  endedStreams(): number {
    let n = 0;
    for (const st of this.streams.values()) if (st.eof) n++;
    return n;
  }

  /** Every task stream that lost output on the way, by rank then stream. */
  losses(): OutputLoss[] {
    const out: OutputLoss[] = [];
    for (const [key, st] of this.streams) {
      if (st.lost === 0 && !st.unknownGap) continue;
      const [rank, stream] = key.split("/") as [string, IoStream];
      out.push({ rank: Number(rank), stream, bytes: st.lost > 0 ? st.lost : undefined });
    }
    return out.sort((a, b) => a.rank - b.rank || a.stream.localeCompare(b.stream));
  }

  /** A line's `RANK: ` label. */
  private prefix(rank: number): Buffer {
    return Buffer.from(`${String(rank).padStart(this.opts.labelWidth ?? 0)}: `);
  }

  // Complete lines, each after its `RANK: ` prefix; the rest waits for the line's end (or the stream's).
  private labelled(rank: number, st: StreamState, data: Buffer, eof: boolean): Buffer {
    const prefix = this.prefix(rank);
    const parts: Buffer[] = [];
    let buf = st.partial ? Buffer.concat([st.partial, data]) : data;
    st.partial = undefined;
    let start = 0;
    for (let nl = buf.indexOf(NEWLINE); nl !== -1; nl = buf.indexOf(NEWLINE, start)) {
      parts.push(prefix, buf.subarray(start, nl + 1));
      start = nl + 1;
    }
    buf = buf.subarray(start);
    if (buf.length > 0) {
      if (eof) parts.push(prefix, buf, Buffer.from("\n"));
      else st.partial = Buffer.from(buf);
    }
    return parts.length === 0 ? Buffer.alloc(0) : Buffer.concat(parts);
  }
}

/** The line `muster run` prints on stderr for a loss. */
export function lossLine(l: OutputLoss): string {
  const what = l.bytes === undefined ? "part of its" : `${l.bytes} ${l.bytes === 1 ? "byte" : "bytes"} of`;
  return `task ${l.rank}: ${what} ${l.stream} lost`;
}

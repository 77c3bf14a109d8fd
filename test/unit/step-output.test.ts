import { describe, expect, it } from "vitest";
import { outputRoutes } from "../../src/cli/output-files.js";
import { StepOutput, lossLine } from "../../src/cli/step-output.js";
import type { IoChunk } from "../../src/protocol/index.js";

function chunk(rank: number, seq: number, data: Buffer, extra: Partial<IoChunk> = {}): IoChunk {
  const text = data.toString("utf8");
  const utf8 = Buffer.from(text, "utf8").equals(data);
  return { type: "io.chunk", v: 1, job: "1", step: 0, rank, stream: "stdout", seq, data: utf8 ? text : data.toString("base64"), ...(utf8 ? {} : { encoding: "base64" }), at: 0, ...extra };
}

function collect(label: boolean): { out: StepOutput; bytes: () => Buffer } {
  const parts: Buffer[] = [];
  const out = new StepOutput({ label, target: () => ({ write: (b) => parts.push(Buffer.from(b)) }) });
  return { out, bytes: () => Buffer.concat(parts) };
}

describe("StepOutput", () => {
  it("writes base64 chunks as their bytes, never as text", () => {
    const { out, bytes } = collect(false);
    const bin = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x41]);
    out.take(chunk(0, 0, bin, { offset: 0 }));
    out.take(chunk(0, 1, Buffer.alloc(0), { offset: 5, eof: true }));
    expect(bytes().equals(bin)).toBe(true);
    expect(out.ended(0, "stdout")).toBe(true);
    expect(out.losses()).toEqual([]);
  });

  it("labels lines across chunks at the byte level, a line split mid-character included", () => {
    const { out, bytes } = collect(true);
    const e = Buffer.from("é"); // two bytes
    out.take(chunk(2, 0, Buffer.concat([Buffer.from("a"), e.subarray(0, 1)]), { offset: 0 }));
    out.take(chunk(2, 1, Buffer.concat([e.subarray(1), Buffer.from("\nb\n\nc")]), { offset: 2 }));
    out.take(chunk(2, 2, Buffer.alloc(0), { offset: 7, eof: true }));
    expect(bytes().toString()).toBe("2: aé\n2: b\n2: \n2: c\n");
  });

  it("pads the rank to the width it is given, as srun -l does among 11 or more tasks", () => {
    const parts: Buffer[] = [];
    const out = new StepOutput({ label: true, labelWidth: 2, target: () => ({ write: (b) => parts.push(Buffer.from(b)) }) });
    out.take(chunk(3, 0, Buffer.from("hi\nrest"), { offset: 0 }));
    out.take(chunk(10, 0, Buffer.from("x\n"), { offset: 0, eof: true }));
    out.flush();
    expect(Buffer.concat(parts).toString()).toBe(" 3: hi\n10: x\n 3: rest\n");
  });

  it("ignores a chunk seen before and counts the bytes an offset jump says were lost", () => {
    const { out, bytes } = collect(false);
    out.take(chunk(1, 0, Buffer.from("abc"), { offset: 0 }));
    out.take(chunk(1, 0, Buffer.from("abc"), { offset: 0 }));
    out.take(chunk(1, 1, Buffer.from("xyz"), { offset: 1003 }));
    out.take(chunk(1, 2, Buffer.alloc(0), { offset: 1006, eof: true }));
    expect(bytes().toString()).toBe("abcxyz");
    expect(out.losses()).toEqual([{ rank: 1, stream: "stdout", bytes: 1000 }]);
    expect(lossLine(out.losses()[0]!)).toBe("task 1: 1000 bytes of stdout lost");
  });

  it("without offsets, a gap in seq is a loss of unknown size", () => {
    const { out } = collect(false);
    out.take(chunk(0, 0, Buffer.from("a")));
    out.take(chunk(0, 2, Buffer.from("b")));
    expect(lossLine(out.losses()[0]!)).toBe("task 0: part of its stdout lost");
  });
});

describe("output routes (-o/-e)", () => {
  it("sends stderr where -o says unless -e is given", () => {
    expect(outputRoutes(undefined, undefined)).toEqual({ stdout: { kind: "terminal" }, stderr: { kind: "terminal" } });
    expect(outputRoutes("o-%t", undefined)).toEqual({ stdout: { kind: "file", pattern: "o-%t" }, stderr: { kind: "file", pattern: "o-%t" } });
    expect(outputRoutes("none", "3")).toEqual({ stdout: { kind: "none" }, stderr: { kind: "task", rank: 3 } });
  });
});

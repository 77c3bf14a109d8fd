/**
 * The task picture on the wire: the status group of every task of a step (and which ones muster
 * stopped) in `step.first_failure`, `step.summary` and the step view. Three forms, one codec for
 * every producer and consumer:
 *
 * - **id sets** (`groups` + `killedByRuntime`): the readable form, used whenever its id sets take at
 *   most PACK_ABOVE_BYTES (tasks that end in rank order stay a few ranges at any size);
 * - **packed** (`packed`): each rank's group index, bit-packed and deflated; used when the id sets
 *   would be larger and the packed form is smaller (tasks that end in a random order);
 * - **counts** (`counts`): tasks per group without ranks, the last resort when even the packed form
 *   would not fit in one message, so a notification is never lost to the payload limit.
 *
 * Readers turn any form back into the exit-status module's `TaskGroups` with decodeTaskPicture.
 */
import { constants as zlibConstants, deflateSync, inflateSync } from "node:zlib";
import { sortGroupKeys, type TaskGroups } from "../exit-status/index.js";
import { IdSetBuilder } from "../idset/index.js";

/** The id sets of a picture above this many bytes (JSON text of `groups` and `killedByRuntime`) are sent packed when that is smaller. */
export const PACK_ABOVE_BYTES = 16 * 1024;

/** The most a picture (with `nodes`) may take in a message: the 1 MiB payload limit less 64 KiB for everything else. */
export const PICTURE_BUDGET_BYTES = 1024 * 1024 - 64 * 1024;

/** The widths a packed group index may have, in bits per rank. */
export const PACKED_BITS = [1, 2, 4, 8, 16] as const;

/** Bits per rank of a packed vector. */
export type PackedBits = (typeof PACKED_BITS)[number];

/** Steps larger than this are never packed or unpacked (bounds the memory a packed field can make a reader allocate). */
export const MAX_PACKED_TASKS = 1 << 24;

/**
 * The packed form: `keys[i]` is the group of every rank whose index is `i`. `data` is base64 of the
 * zlib stream (RFC 1950) of the indexes, `bits` per rank, rank 0 first, least significant bits
 * first within a byte (16-bit indexes little-endian); `killed` the same for one bit per rank, set
 * when muster asked that task to stop. Unused bits of the last byte are zero.
 */
export interface PackedTaskStatus {
  keys: string[];
  bits: PackedBits;
  data: string;
  killed: string;
}

/** The counts form: tasks per group key, and how many of them muster stopped; ranks are not sent. */
export interface TaskCounts {
  groups: Record<string, number>;
  killedByRuntime: number;
}

/** The picture fields of a message or view, in exactly one of the three forms, with `nodes` (always id sets). */
export type WireTaskPicture =
  | { groups: Record<string, string>; killedByRuntime: string; nodes: Record<string, string> }
  | { packed: PackedTaskStatus; nodes: Record<string, string> }
  | { counts: TaskCounts; nodes: Record<string, string> };

/** What decodeTaskPicture reads: any message or view carrying a picture. */
export interface WireTaskPictureFields {
  readonly ntasks: number;
  readonly groups?: Readonly<Record<string, string>>;
  readonly killedByRuntime?: string;
  readonly packed?: Readonly<PackedTaskStatus>;
  readonly counts?: Readonly<TaskCounts>;
  readonly nodes: Readonly<Record<string, string>>;
}

/** Options of encodeTaskPicture (the defaults are the protocol's; tests lower them). */
export interface EncodeTaskPictureOptions {
  readonly packAboveBytes?: number;
  readonly budgetBytes?: number;
}

/**
 * The wire form of a step's picture (from `groupTasks`, covering ranks `0..ntasks-1` once each):
 * id sets when small, else the smaller of id sets and packed, else counts when neither fits.
 */
export function encodeTaskPicture(picture: TaskGroups, ntasks: number, options: EncodeTaskPictureOptions = {}): WireTaskPicture {
  const packAbove = options.packAboveBytes ?? PACK_ABOVE_BYTES;
  const budget = options.budgetBytes ?? PICTURE_BUDGET_BYTES;
  const nodes = { ...picture.nodes };
  const idSets = { groups: { ...picture.groups }, killedByRuntime: picture.killedByRuntime, nodes };
  const idBytes = jsonBytes({ groups: picture.groups, killedByRuntime: picture.killedByRuntime });
  if (idBytes <= packAbove) return idSets;
  const nodeBytes = jsonBytes(nodes);
  const packed = tryPack(picture, ntasks);
  const packedBytes = packed ? jsonBytes({ packed }) : Number.POSITIVE_INFINITY;
  if (packed && packedBytes < idBytes) {
    if (packedBytes + nodeBytes <= budget) return { packed, nodes };
  } else if (idBytes + nodeBytes <= budget) {
    return idSets;
  }
  return { counts: countTasks(picture), nodes };
}

/** Packs a picture's groups and killedByRuntime into per-rank vectors; throws a RangeError unless its groups cover `0..ntasks-1` exactly once. */
export function packTaskStatus(picture: TaskGroups, ntasks: number): PackedTaskStatus {
  checkTaskCount(ntasks);
  const keys = sortGroupKeys(Object.keys(picture.groups));
  if (keys.length > 0xffff) throw new RangeError(`${keys.length} groups cannot be packed`);
  const bits = PACKED_BITS.find((b) => keys.length <= 2 ** b)!;
  const index = new Uint16Array(ntasks).fill(0xffff);
  keys.forEach((key, i) => {
    forEachRange(picture.groups[key]!, (lo, hi) => {
      if (hi >= ntasks) throw new RangeError(`group ${key} has rank ${hi}, beyond the ${ntasks} tasks`);
      for (let r = lo; r <= hi; r++) {
        if (index[r] !== 0xffff) throw new RangeError(`rank ${r} is in two groups (${keys[index[r]!]} and ${key})`);
        index[r] = i;
      }
    });
  });
  const missing = index.indexOf(0xffff);
  if (missing >= 0) throw new RangeError(`rank ${missing} is in no group`);
  const data = new Uint8Array(packedLength(ntasks, bits));
  for (let r = 0; r < ntasks; r++) writeIndex(data, bits, r, index[r]!);
  const killed = new Uint8Array(packedLength(ntasks, 1));
  forEachRange(picture.killedByRuntime, (lo, hi) => {
    if (hi >= ntasks) throw new RangeError(`killedByRuntime has rank ${hi}, beyond the ${ntasks} tasks`);
    for (let r = lo; r <= hi; r++) killed[r >>> 3]! |= 1 << (r & 7);
  });
  return { keys, bits, data: deflateBase64(data), killed: deflateBase64(killed) };
}

/** Why a packed form is not a valid picture of `ntasks` tasks, or undefined when it is (checks everything decodeTaskPicture relies on). */
export function checkPackedTaskStatus(packed: Readonly<PackedTaskStatus>, ntasks: number): string | undefined {
  try {
    readPacked(packed, ntasks);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** The picture as the exit-status module renders it, from any wire form; throws a RangeError on a malformed one (parse messages with their schema first). */
export function decodeTaskPicture(fields: WireTaskPictureFields): TaskGroups {
  const nodes = fields.nodes;
  const forms = Number(fields.groups !== undefined) + Number(fields.packed !== undefined) + Number(fields.counts !== undefined);
  if (forms !== 1) throw new RangeError(`a task picture has exactly one of groups, packed or counts (found ${forms})`);
  if (fields.groups) return { groups: fields.groups, nodes, killedByRuntime: fields.killedByRuntime ?? "" };
  if (fields.counts) {
    const counts = fields.counts;
    const groups: Record<string, number> = {};
    for (const key of sortGroupKeys(Object.keys(counts.groups))) groups[key] = counts.groups[key]!;
    return { groups: {}, nodes, killedByRuntime: "", omitted: { groups, killedByRuntime: counts.killedByRuntime } };
  }
  const packed = fields.packed!;
  const cached = unpacked.get(packed);
  if (cached) return { ...cached, nodes };
  const { index, killed } = readPacked(packed, fields.ntasks);
  const builders = packed.keys.map(() => new IdSetBuilder());
  const killedSet = new IdSetBuilder();
  for (let r = 0; r < fields.ntasks; r++) {
    builders[index(r)]!.add(r);
    if (killed[r >>> 3]! & (1 << (r & 7))) killedSet.add(r);
  }
  const groups: Record<string, string> = {};
  const at = new Map(packed.keys.map((k, i) => [k, i]));
  for (const key of sortGroupKeys(packed.keys)) groups[key] = builders[at.get(key)!]!.build().toString();
  const picture = { groups, nodes, killedByRuntime: killedSet.build().toString() };
  unpacked.set(packed, picture);
  return picture;
}

/** Decoded packed forms, by the parsed object (a reader renders one message several times). */
const unpacked = new WeakMap<object, TaskGroups>();

/** The id-set fields of any wire picture (what a reader that wants `groups` gets); the counts form gives empty ones plus `omitted`. */
export function withIdSets<T extends WireTaskPictureFields>(fields: T): Omit<T, "packed" | "counts"> & TaskGroups {
  const picture = decodeTaskPicture(fields);
  const { packed: _p, counts: _c, ...rest } = fields;
  return { ...rest, ...picture };
}

/** The packed form, or undefined when the picture cannot be packed (too many tasks, or not a partition of the ranks): a notification is sent in another form rather than lost. */
function tryPack(picture: TaskGroups, ntasks: number): PackedTaskStatus | undefined {
  try {
    return packTaskStatus(picture, ntasks);
  } catch {
    return undefined;
  }
}

function countTasks(picture: TaskGroups): TaskCounts {
  const groups: Record<string, number> = {};
  for (const [key, ids] of Object.entries(picture.groups)) groups[key] = rangeCount(ids);
  return { groups, killedByRuntime: rangeCount(picture.killedByRuntime) };
}

function rangeCount(ids: string): number {
  let n = 0;
  forEachRange(ids, (lo, hi) => (n += hi - lo + 1));
  return n;
}

/** Decodes and checks a packed form: index reader and killed bits. */
function readPacked(packed: Readonly<PackedTaskStatus>, ntasks: number): { index: (rank: number) => number; killed: Uint8Array } {
  checkTaskCount(ntasks);
  const { keys, bits } = packed;
  if (!(PACKED_BITS as readonly number[]).includes(bits)) throw new RangeError(`bits must be one of ${PACKED_BITS.join(", ")}, not ${String(bits)}`);
  if (keys.length === 0 || keys.length > 2 ** bits) throw new RangeError(`${keys.length} keys do not fit ${bits}-bit indexes`);
  if (new Set(keys).size !== keys.length) throw new RangeError("keys repeat a group key");
  const data = inflateBase64(packed.data, packedLength(ntasks, bits), "data", ntasks, bits);
  const killed = inflateBase64(packed.killed, packedLength(ntasks, 1), "killed", ntasks, 1);
  const index = (r: number): number => readIndex(data, bits, r);
  const used = new Uint32Array(keys.length);
  for (let r = 0; r < ntasks; r++) {
    const i = index(r);
    if (i >= keys.length) throw new RangeError(`data: rank ${r} has group index ${i}, but there are ${keys.length} keys`);
    used[i]!++;
  }
  const unused = used.indexOf(0);
  if (unused >= 0) throw new RangeError(`keys: group ${keys[unused]} has no rank`);
  return { index, killed };
}

function checkTaskCount(ntasks: number): void {
  if (!Number.isSafeInteger(ntasks) || ntasks < 1 || ntasks > MAX_PACKED_TASKS) throw new RangeError(`a packed picture holds 1 to ${MAX_PACKED_TASKS} tasks, not ${ntasks}`);
}

/** Bytes of `ntasks` indexes of `bits` bits. */
function packedLength(ntasks: number, bits: PackedBits): number {
  return Math.ceil((ntasks * bits) / 8);
}

function writeIndex(data: Uint8Array, bits: PackedBits, rank: number, value: number): void {
  if (bits === 16) {
    data[rank * 2] = value & 0xff;
    data[rank * 2 + 1] = value >>> 8;
  } else if (bits === 8) {
    data[rank] = value;
  } else {
    const bit = rank * bits;
    data[bit >>> 3]! |= value << (bit & 7);
  }
}

function readIndex(data: Uint8Array, bits: PackedBits, rank: number): number {
  if (bits === 16) return data[rank * 2]! | (data[rank * 2 + 1]! << 8);
  if (bits === 8) return data[rank]!;
  const bit = rank * bits;
  return (data[bit >>> 3]! >>> (bit & 7)) & ((1 << bits) - 1);
}

/**
 * The smaller of two fast zlib streams: Huffman codes only (best for dense random indexes) and
 * run-length matches (best for sparse ones). Both take a few ms for a million ranks, where
 * default deflate takes 5-40 ms (300 ms at level 9) and is larger on this data.
 */
function deflateBase64(bytes: Uint8Array): string {
  const huffman = deflateSync(bytes, { strategy: zlibConstants.Z_HUFFMAN_ONLY });
  const rle = deflateSync(bytes, { level: 9, strategy: zlibConstants.Z_RLE });
  return (rle.length <= huffman.length ? rle : huffman).toString("base64");
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Inflates a base64 zlib stream that must decode to exactly `length` bytes with zero padding bits. */
function inflateBase64(text: string, length: number, field: string, ntasks: number, bits: PackedBits): Uint8Array {
  if (text.length === 0 || !BASE64.test(text)) throw new RangeError(`${field}: not base64`);
  const input = Buffer.from(text, "base64");
  let out: Buffer;
  try {
    const { buffer, engine } = inflateSync(input, { maxOutputLength: length, info: true }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
    if (engine.bytesWritten !== input.length) throw new RangeError("bytes after the end of the stream");
    out = buffer;
  } catch (err) {
    const why = (err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE" ? `more than ${length} bytes` : (err as Error).message;
    throw new RangeError(`${field}: not a zlib stream of ${length} bytes (${ntasks} tasks at ${bits} bits): ${why}`);
  }
  if (out.length !== length) throw new RangeError(`${field}: decodes to ${out.length} bytes, expected ${length} (${ntasks} tasks at ${bits} bits)`);
  const usedBits = (ntasks * bits) % 8;
  if (usedBits !== 0 && out[length - 1]! >>> usedBits !== 0) throw new RangeError(`${field}: padding bits after rank ${ntasks - 1} are not zero`);
  return out;
}

/** Calls `fn(lo, hi)` for each range of an id set (`0-3,7`), without building objects; throws a RangeError on bad syntax. */
function forEachRange(text: string, fn: (lo: number, hi: number) => void): void {
  const n = text.length;
  let i = 0;
  const num = (): number => {
    const start = i;
    let v = 0;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c < 48 || c > 57) break;
      v = v * 10 + (c - 48);
      i++;
    }
    if (i === start || !Number.isSafeInteger(v)) throw new RangeError(`bad id set "${text.length > 40 ? `${text.slice(0, 40)}…` : text}" at ${start}`);
    return v;
  };
  while (i < n) {
    const lo = num();
    let hi = lo;
    if (text.charCodeAt(i) === 45) {
      i++;
      hi = num();
      if (hi < lo) throw new RangeError(`bad id range ${lo}-${hi}: end before start`);
    }
    fn(lo, hi);
    if (i < n) {
      if (text.charCodeAt(i) !== 44) throw new RangeError(`bad id set "${text.length > 40 ? `${text.slice(0, 40)}…` : text}" at ${i}`);
      i++;
      if (i === n) throw new RangeError(`bad id set: trailing comma`);
    }
  }
}

/** Bytes of a value's JSON text (pictures are ASCII). */
function jsonBytes(value: unknown): number {
  return JSON.stringify(value).length;
}

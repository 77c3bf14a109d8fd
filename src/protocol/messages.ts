/**
 * The registry of every message, the one parser every inbound message goes through, and the one
 * encoder. Parse order at an edge: size check, UTF-8 + JSON, then the zod schema.
 */
import type { z } from "zod";
import type { ErrorCode, WireError } from "./common.schema.js";
import { PROTOCOL_VERSION } from "./common.schema.js";
import type { Reply, ReplyErr, ReplyOk } from "./control.schema.js";
import { KillRequestSchema, QueryRequestSchema, ReplySchema, SignalRequestSchema, SubmitRequestSchema } from "./control.schema.js";
import { CommandAckSchema, FenceCommandSchema, LaunchCommandSchema, PingCommandSchema, SignalCommandSchema } from "./command.schema.js";
import type { DlqRecord } from "./dlq.schema.js";
import { DLQ_PAYLOAD_LIMIT, DlqRecordSchema } from "./dlq.schema.js";
import { TaskEndedSchema, TaskStartedSchema } from "./event.schema.js";
import { IoChunkSchema } from "./io.schema.js";
import { ByeSchema, DrainingSchema, HeartbeatSchema, HelloSchema } from "./node.schema.js";
import { JobStateMessageSchema, StepFirstFailureSchema, StepSummarySchema } from "./state.schema.js";

/** NATS's default max payload (1 MiB): nothing larger is published or parsed. */
export const MAX_PAYLOAD_BYTES = 1024 * 1024;

/** Every message schema by its `type` (a reply and an ack each cover their ok and error forms). */
export const MESSAGE_SCHEMAS = {
  submit: SubmitRequestSchema,
  kill: KillRequestSchema,
  signal: SignalRequestSchema,
  query: QueryRequestSchema,
  reply: ReplySchema,
  "cmd.launch": LaunchCommandSchema,
  "cmd.signal": SignalCommandSchema,
  "cmd.fence": FenceCommandSchema,
  "cmd.ping": PingCommandSchema,
  "cmd.ack": CommandAckSchema,
  "task.started": TaskStartedSchema,
  "task.ended": TaskEndedSchema,
  hello: HelloSchema,
  heartbeat: HeartbeatSchema,
  bye: ByeSchema,
  draining: DrainingSchema,
  "job.state": JobStateMessageSchema,
  "step.first_failure": StepFirstFailureSchema,
  "step.summary": StepSummarySchema,
  dlq: DlqRecordSchema,
  "io.chunk": IoChunkSchema,
} as const;

/** The `type` of a message. */
export type MessageType = keyof typeof MESSAGE_SCHEMAS;

/** Any muster message. */
export type Message = { [K in MessageType]: z.infer<(typeof MESSAGE_SCHEMAS)[K]> }[MessageType];

/** Why a payload was rejected before reaching any logic. */
export const PARSE_FAILURE_CODES = ["PAYLOAD_TOO_LARGE", "BAD_JSON", "BAD_SCHEMA"] as const;

/** One of the parse failure codes (each is also an ErrorCode). */
export type ParseFailureCode = (typeof PARSE_FAILURE_CODES)[number] & ErrorCode;

/** The result of parseMessage: the typed value, or a stable code and a one-line message. */
export type ParseResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly code: ParseFailureCode; readonly message: string };

/** Thrown by encodeMessage when a message cannot be sent. */
export class ProtocolError extends Error {
  /** Stable code. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = "ProtocolError";
    this.code = code;
  }
}

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(root)";
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out === "" ? String(seg) : `.${String(seg)}`;
  }
  return out;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** Parses one inbound payload: size check, then UTF-8 and JSON, then the schema; never throws. */
export function parseMessage<S extends z.ZodType>(
  schema: S,
  bytes: Uint8Array,
  subject: string,
  maxBytes: number = MAX_PAYLOAD_BYTES,
): ParseResult<z.output<S>> {
  if (bytes.byteLength > maxBytes) {
    return { ok: false, code: "PAYLOAD_TOO_LARGE", message: `${subject}: payload of ${bytes.byteLength} bytes exceeds ${maxBytes}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(utf8.decode(bytes));
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return { ok: false, code: "BAD_JSON", message: `${subject}: not JSON: ${why}` };
  }
  const result = schema.safeParse(json);
  if (result.success) return { ok: true, value: result.data };
  const issue = result.error.issues[0];
  const where = formatPath(issue?.path ?? []);
  const text = issue?.message ?? "invalid";
  const version =
    where === "v" && typeof json === "object" && json !== null && "v" in json
      ? ` (unsupported protocol version ${JSON.stringify((json as { v: unknown }).v)}; this reader knows v${PROTOCOL_VERSION})`
      : "";
  return { ok: false, code: "BAD_SCHEMA", message: `${subject}: ${where}: ${text}${version}` };
}

/** Encodes a message as UTF-8 JSON; throws ProtocolError PAYLOAD_TOO_LARGE above `maxBytes`. */
export function encodeMessage(value: Message, maxBytes: number = MAX_PAYLOAD_BYTES): Uint8Array {
  const bytes = encoder.encode(JSON.stringify(value));
  if (bytes.byteLength > maxBytes) {
    throw new ProtocolError("PAYLOAD_TOO_LARGE", `${value.type} message of ${bytes.byteLength} bytes exceeds ${maxBytes}`);
  }
  return bytes;
}

/** Builds a successful reply; `undefined` data becomes `null` so the key survives JSON. */
export function okReply(data: unknown = null): ReplyOk {
  return { type: "reply", v: PROTOCOL_VERSION, ok: true, data: data === undefined ? null : data };
}

/** Builds a failed reply from a stable code. */
export function errReply(code: ErrorCode, message: string, details?: Record<string, unknown>): ReplyErr {
  const error: WireError = details === undefined ? { code, message } : { code, message, details };
  return { type: "reply", v: PROTOCOL_VERSION, ok: false, error };
}

/** Narrows a reply to its data or its error. */
export function isOkReply(reply: Reply): reply is ReplyOk {
  return reply.ok;
}

function toBase64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

/** What createDlqRecord needs. */
export interface DlqRecordOptions {
  readonly subject: string;
  readonly reason: ErrorCode;
  readonly message: string;
  readonly bytes: Uint8Array;
  readonly receivedAt: number;
  /** Raw bytes kept at most (default DLQ_PAYLOAD_LIMIT). */
  readonly limit?: number;
}

/** Builds a dead-letter record, keeping at most `limit` raw bytes (as UTF-8 text when valid, else base64). */
export function createDlqRecord(options: DlqRecordOptions): DlqRecord {
  const limit = options.limit ?? DLQ_PAYLOAD_LIMIT;
  const { bytes } = options;
  const kept = bytes.subarray(0, Math.min(limit, bytes.byteLength));
  const truncated = kept.byteLength < bytes.byteLength;
  const base = { type: "dlq", v: PROTOCOL_VERSION, subject: options.subject, reason: options.reason, message: options.message, receivedAt: options.receivedAt } as const;
  // A cut may split a multi-byte character: back off up to 3 bytes to keep readable text.
  for (let back = 0; back <= (truncated ? 3 : 0) && back <= kept.byteLength; back++) {
    try {
      const data = utf8.decode(kept.subarray(0, kept.byteLength - back));
      return { ...base, payload: { encoding: "utf8", data, size: bytes.byteLength, truncated } };
    } catch {
      // not valid UTF-8 at this length; try a shorter cut or fall back to base64
    }
  }
  return { ...base, payload: { encoding: "base64", data: toBase64(kept), size: bytes.byteLength, truncated } };
}

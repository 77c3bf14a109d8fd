/**
 * Dead-letter records on `<p>.dlq.<source>` (stream `<P>_DLQ`): input that was rejected at an
 * edge, kept with its reason and a bounded copy of the raw bytes so it can be inspected later.
 */
import { z } from "zod";
import { EpochMsSchema, ErrorCodeSchema, VersionSchema } from "./common.schema.js";

/** How many raw bytes a dead-letter record keeps by default. */
export const DLQ_PAYLOAD_LIMIT = 4096;

/** The raw payload as received, possibly truncated. */
export const DlqPayloadSchema = z.object({
  /** `utf8` when the kept bytes are valid UTF-8, otherwise `base64`. */
  encoding: z.enum(["utf8", "base64"]),
  data: z.string(),
  /** Size of the original payload in bytes. */
  size: z.number().int().min(0),
  truncated: z.boolean(),
});

/** `dlq`: one rejected inbound message. */
export const DlqRecordSchema = z
  .object({
    type: z.literal("dlq"),
    v: VersionSchema,
    /** The subject the rejected message arrived on. */
    subject: z.string().min(1),
    reason: ErrorCodeSchema,
    message: z.string(),
    receivedAt: EpochMsSchema,
    payload: DlqPayloadSchema,
  })
  .meta({ title: "dlq", description: "A rejected inbound message with its reason and raw bytes." });

/** The kept raw payload of a dead-letter record. */
export type DlqPayload = z.infer<typeof DlqPayloadSchema>;
/** A `dlq` record. */
export type DlqRecord = z.infer<typeof DlqRecordSchema>;

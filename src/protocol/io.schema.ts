/**
 * Task output, agent → watchers on `<p>.io.<job>.<step>.<task>` (stream `<P>_IO`, bounded).
 * `seq` orders the chunks of one stream of one task and lets a reader see gaps.
 */
import { z } from "zod";
import { EpochMsSchema, JobIdSchema, RankSchema, StepIdSchema, VersionSchema } from "./common.schema.js";

/** The two output streams of a task. */
export const IO_STREAMS = ["stdout", "stderr"] as const;

/** `io.chunk`: a piece of a task's stdout or stderr. */
export const IoChunkSchema = z
  .object({
    type: z.literal("io.chunk"),
    v: VersionSchema,
    job: JobIdSchema,
    step: StepIdSchema,
    rank: RankSchema,
    stream: z.enum(IO_STREAMS),
    /** Counts up from 0 per (task, stream). */
    seq: z.number().int().min(0),
    /**
     * Bytes of the stream before this chunk's data, lost ones included: a reader that has seen fewer
     * knows exactly how many bytes it missed (dropped by the agent, or gone from the IO stream).
     */
    offset: z.number().int().min(0).optional(),
    /** The bytes as text; `base64` when `encoding` says so (output that is not valid UTF-8). */
    data: z.string(),
    encoding: z.enum(["utf8", "base64"]).optional(),
    /** True on the last chunk of the stream (its data may be empty). */
    eof: z.boolean().optional(),
    at: EpochMsSchema,
  })
  .meta({ title: "io.chunk", description: "A chunk of a task's stdout or stderr." });

/** A task output stream name. */
export type IoStream = (typeof IO_STREAMS)[number];
/** An `io.chunk` message. */
export type IoChunk = z.infer<typeof IoChunkSchema>;

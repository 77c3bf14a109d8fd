/**
 * Reading what JetStream recorded about a job: its task events (EVENTS stream, `<p>.evt.*.<job>.>`)
 * and what the supervisor published about it (JOBS stream, `<p>.job.<job>.>`). Both are read with
 * ordered consumers from the first stored message; nothing is acknowledged or changed.
 */
import { DeliverPolicy, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import {
  JobStateMessageSchema,
  StepExitCodesMessageSchema,
  TaskEventSchema,
  parseMessage,
  type JobStateMessage,
  type StepExitCodesMessage,
  type Subjects,
  type TaskEvent,
} from "../../src/protocol/index.js";

/** A task event as the EVENTS stream holds it, with its stream sequence. */
export interface RecordedTaskEvent {
  readonly seq: number;
  readonly event: TaskEvent;
}

/** A message the supervisor published on the JOBS stream about a job. */
export interface RecordedJobMessage {
  readonly seq: number;
  readonly message: JobStateMessage | StepExitCodesMessage;
}

/** Everything recorded about one job, in stream order. */
export interface JobRecord {
  readonly events: readonly RecordedTaskEvent[];
  readonly published: readonly RecordedJobMessage[];
  /** Stored messages that did not parse (shown, never replayed). */
  readonly unreadable: number;
}

/** Reads every stored message of `stream` matching `subject`, oldest first. */
export async function readStream(js: JetStreamClient, stream: string, subject: string, timeoutMs = 30_000): Promise<JsMsg[]> {
  const consumer = await js.consumers.get(stream, { filter_subjects: subject, deliver_policy: DeliverPolicy.All });
  const out: JsMsg[] = [];
  try {
    const info = await consumer.info();
    if (info.num_pending === 0) return out;
    const messages = await consumer.consume({ max_messages: 2000 });
    const timer = setTimeout(() => void messages.close(), timeoutMs);
    try {
      for await (const m of messages) {
        out.push(m);
        if (m.info.pending === 0) break;
      }
    } finally {
      clearTimeout(timer);
      await messages.close();
    }
    return out;
  } finally {
    await consumer.delete().catch(() => undefined);
  }
}

/** Parses a JOBS-stream message (state change, first-failure notification or summary). */
export function parseJobMessage(m: { subject: string; data: Uint8Array }): JobStateMessage | StepExitCodesMessage | undefined {
  const parsed = m.subject.endsWith(".exitcodes") ? parseMessage(StepExitCodesMessageSchema, m.data, m.subject) : parseMessage(JobStateMessageSchema, m.data, m.subject);
  return parsed.ok ? parsed.value : undefined;
}

/** Parses an EVENTS-stream message. */
export function parseTaskEvent(m: { subject: string; data: Uint8Array }): TaskEvent | undefined {
  const parsed = parseMessage(TaskEventSchema, m.data, m.subject);
  return parsed.ok ? parsed.value : undefined;
}

/** Loads a job's recorded task events and published messages. */
export async function loadJobRecord(js: JetStreamClient, subjects: Subjects, job: string): Promise<JobRecord> {
  const [evts, jobs] = await Promise.all([
    readStream(js, subjects.streams.events.name, subjects.evt.ofJob(job)),
    readStream(js, subjects.streams.jobs.name, subjects.job.ofJob(job)),
  ]);
  let unreadable = 0;
  const events: RecordedTaskEvent[] = [];
  for (const m of evts) {
    const event = parseTaskEvent(m);
    if (event) events.push({ seq: m.seq, event });
    else unreadable++;
  }
  const published: RecordedJobMessage[] = [];
  for (const m of jobs) {
    const message = parseJobMessage(m);
    if (message) published.push({ seq: m.seq, message });
    else unreadable++;
  }
  return { events, published, unreadable };
}

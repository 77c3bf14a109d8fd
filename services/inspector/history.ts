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

/** Reads every stored message of `stream` matching `subject` (from sequence `startSeq` on), oldest first. */
export async function readStream(js: JetStreamClient, stream: string, subject: string, opts: { startSeq?: number; timeoutMs?: number } = {}): Promise<JsMsg[]> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const from = opts.startSeq !== undefined && opts.startSeq > 1 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: opts.startSeq } : { deliver_policy: DeliverPolicy.All };
  const consumer = await js.consumers.get(stream, { filter_subjects: subject, ...from });
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
  return new JobRecordReader(js, subjects, job).refresh();
}

/**
 * A job's record kept up to date incrementally: each refresh reads only what the streams stored
 * after the last message it has (a 10,000-task step records 20,000 events).
 */
export class JobRecordReader {
  private readonly events: RecordedTaskEvent[] = [];
  private readonly published: RecordedJobMessage[] = [];
  private unreadable = 0;
  private eventsSeq = 0;
  private publishedSeq = 0;

  constructor(
    private readonly js: JetStreamClient,
    private readonly subjects: Subjects,
    readonly job: string,
  ) {}

  private last: Promise<unknown> = Promise.resolve();

  /** Reads what is new; resolves with the whole record (arrays shared, appended to on later refreshes). */
  refresh(what: { events?: boolean } = {}): Promise<JobRecord> {
    // One read at a time: concurrent requests would read the same new messages twice.
    const next = this.last.then(() => this.read(what), () => this.read(what));
    this.last = next.catch(() => undefined);
    return next;
  }

  private async read(what: { events?: boolean }): Promise<JobRecord> {
    const s = this.subjects;
    const [evts, jobs] = await Promise.all([
      what.events === false ? Promise.resolve([]) : readStream(this.js, s.streams.events.name, s.evt.ofJob(this.job), { startSeq: this.eventsSeq + 1 }),
      readStream(this.js, s.streams.jobs.name, s.job.ofJob(this.job), { startSeq: this.publishedSeq + 1 }),
    ]);
    for (const m of evts) {
      if (m.seq <= this.eventsSeq) continue;
      this.eventsSeq = m.seq;
      const event = parseTaskEvent(m);
      if (event) this.events.push({ seq: m.seq, event });
      else this.unreadable++;
    }
    for (const m of jobs) {
      if (m.seq <= this.publishedSeq) continue;
      this.publishedSeq = m.seq;
      const message = parseJobMessage(m);
      if (message) this.published.push({ seq: m.seq, message });
      else this.unreadable++;
    }
    return { events: this.events, published: this.published, unreadable: this.unreadable };
  }
}

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

/** Messages asked for per pull request. */
const FETCH_BATCH = 1000;

/** Reads every stored message of `stream` matching `subject` (from sequence `startSeq` on), oldest first. */
export async function readStream(js: JetStreamClient, stream: string, subject: string, opts: { startSeq?: number; timeoutMs?: number } = {}): Promise<JsMsg[]> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const from = opts.startSeq !== undefined && opts.startSeq > 1 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: opts.startSeq } : { deliver_policy: DeliverPolicy.All };
  const consumer = await js.consumers.get(stream, { filter_subjects: subject, ...from });
  const out: JsMsg[] = [];
  try {
    // Read what is stored now; anything recorded meanwhile is for the next read. Fetches are
    // bounded (`expires`), so a read never waits on messages that do not come.
    const stored = (await consumer.info()).num_pending;
    const deadline = Date.now() + timeoutMs;
    while (out.length < stored && Date.now() < deadline) {
      const batch = await consumer.fetch({ max_messages: Math.min(FETCH_BATCH, stored - out.length), expires: 2_000 });
      const before = out.length;
      for await (const m of batch) out.push(m);
      if (out.length === before) break;
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

  /** One read of each stream at a time (concurrent reads would fetch the same new messages twice). */
  private eventsRead: Promise<unknown> = Promise.resolve();
  private publishedRead: Promise<unknown> = Promise.resolve();

  /**
   * Reads what is new (the JOBS messages only with `events: false`); resolves with the whole record,
   * whose arrays are shared and appended to by later refreshes.
   */
  async refresh(what: { events?: boolean } = {}): Promise<JobRecord> {
    await Promise.all([what.events === false ? undefined : this.queue("events"), this.queue("published")]);
    return { events: this.events, published: this.published, unreadable: this.unreadable };
  }

  private queue(which: "events" | "published"): Promise<void> {
    const read = () => (which === "events" ? this.readEvents() : this.readPublished());
    const next = (which === "events" ? this.eventsRead : this.publishedRead).then(read, read);
    if (which === "events") this.eventsRead = next.catch(() => undefined);
    else this.publishedRead = next.catch(() => undefined);
    return next;
  }

  private async readEvents(): Promise<void> {
    const s = this.subjects;
    for (const m of await readStream(this.js, s.streams.events.name, s.evt.ofJob(this.job), { startSeq: this.eventsSeq + 1 })) {
      if (m.seq <= this.eventsSeq) continue;
      this.eventsSeq = m.seq;
      const event = parseTaskEvent(m);
      if (event) this.events.push({ seq: m.seq, event });
      else this.unreadable++;
    }
  }

  private async readPublished(): Promise<void> {
    const s = this.subjects;
    for (const m of await readStream(this.js, s.streams.jobs.name, s.job.ofJob(this.job), { startSeq: this.publishedSeq + 1 })) {
      if (m.seq <= this.publishedSeq) continue;
      this.publishedSeq = m.seq;
      const message = parseJobMessage(m);
      if (message) this.published.push({ seq: m.seq, message });
      else this.unreadable++;
    }
  }
}

/**
 * Publishing to JetStream until the server acknowledges: while NATS is unreachable or the stream
 * does not exist yet, every publish is retried with a backoff (100 ms doubling to 2 s). The Outbox
 * publishes many messages at once and keeps order only per key (a task's `started` is always stored
 * before its `ended`), lets a failure jump the queue, and fences node messages (hello, draining, bye).
 */
import { setTimeout as delay } from "node:timers/promises";
import type { JetStreamClient } from "@nats-io/jetstream";
import type { Logger } from "../../src/logger.js";

/** How publishUntilAcked retries. */
export interface RetryOptions {
  /** Aborting stops the retries (the publish then reports false). */
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** Per-attempt wait for the JetStream acknowledgement, ms. */
  readonly ackTimeoutMs: number;
  readonly minDelayMs?: number;
  readonly maxDelayMs?: number;
  /** Give up after failing this long while connected (the stream is missing); never while disconnected. Default: never. */
  readonly giveUpAfterMs?: number;
  /** Whether the connection is up now (for giveUpAfterMs). */
  readonly isConnected?: () => boolean;
}

/** The retry backoff bounds, ms. */
export const RETRY_MIN_DELAY_MS = 100;
export const RETRY_MAX_DELAY_MS = 2_000;
/** How often a publish waiting for the connection checks it, ms. */
const DISCONNECTED_POLL_MS = 50;

/** Publishes one message until JetStream acknowledges it (a duplicate counts); false when aborted or given up. */
export async function publishUntilAcked(
  js: JetStreamClient,
  subject: string,
  data: Uint8Array,
  msgID: string | undefined,
  opts: RetryOptions,
): Promise<boolean> {
  let wait = opts.minDelayMs ?? RETRY_MIN_DELAY_MS;
  const maxWait = opts.maxDelayMs ?? RETRY_MAX_DELAY_MS;
  let failingConnectedMs = 0;
  for (let attempt = 1; ; attempt++) {
    if (opts.signal.aborted) return false;
    // A request made while disconnected is never answered (nats.js drops what it buffered when it
    // reconnects), so it could only time out after ackTimeoutMs: wait for the connection instead.
    while (opts.isConnected?.() === false) {
      try {
        await delay(DISCONNECTED_POLL_MS, undefined, { signal: opts.signal });
      } catch {
        return false;
      }
    }
    const began = Date.now();
    try {
      await js.publish(subject, data, msgID === undefined ? { timeout: opts.ackTimeoutMs } : { msgID, timeout: opts.ackTimeoutMs });
      if (attempt > 1) opts.logger.info({ subject, msgID, attempts: attempt }, "publish.recovered");
      return true;
    } catch (err) {
      if (opts.signal.aborted) return false;
      if (attempt === 1 || attempt % 20 === 0) {
        opts.logger.warn({ subject, msgID, attempt, err: (err as Error).message }, "publish.retry");
      }
      if (opts.isConnected?.() ?? true) failingConnectedMs += Date.now() - began + wait;
      if (opts.giveUpAfterMs !== undefined && failingConnectedMs >= opts.giveUpAfterMs) {
        opts.logger.warn({ subject, msgID, attempts: attempt, err: (err as Error).message }, "publish.given_up");
        return false;
      }
    }
    try {
      await delay(wait, undefined, { signal: opts.signal });
    } catch {
      return false;
    }
    wait = Math.min(wait * 2, maxWait);
  }
}

/** Options of an Outbox. */
export interface OutboxOptions extends Omit<RetryOptions, "signal"> {
  /** Keep at most this many waiting messages, dropping the oldest unsent (best-effort outboxes such as the DLQ). Default: unbounded. */
  readonly maxItems?: number;
  /** Publishes awaiting their acknowledgement at once (default OUTBOX_WINDOW). */
  readonly window?: number;
}

/** How a message is ordered: see Outbox. */
export interface EnqueueOptions {
  /** Messages with the same key are stored in the order they were queued; messages of different keys are not ordered. Default: one key for all. */
  readonly key?: string;
  /** Goes out ahead of every queued message that is not urgent (with the messages of its key queued before it). */
  readonly urgent?: boolean;
  /** Waits for every message queued before it, and every message queued after it waits for it (hello, draining, bye). */
  readonly fence?: boolean;
}

/** Publishes in flight per outbox by default: enough to keep JetStream busy, few enough that an urgent message is never far behind. */
export const OUTBOX_WINDOW = 32;

type EntryState = "waiting" | "ready" | "sent" | "done";

interface Entry {
  readonly seq: number;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly msgID: string | undefined;
  readonly key: string;
  readonly fence: boolean;
  urgent: boolean;
  state: EntryState;
  readonly settle: (acked: boolean) => void;
}

/**
 * JetStream publishes, each retried until acknowledged, with up to `window` acknowledgements in
 * flight. Order is kept where it matters and nowhere else:
 * - per key: a message is sent only once the message queued before it with the same key was
 *   acknowledged (a task's `started` is stored before its `ended`, whatever the retries);
 * - urgent messages (a task's failure) are sent ahead of every ordinary message waiting, together
 *   with the messages of their key queued before them, so per-key order still holds;
 * - a fence waits for everything queued before it, and holds everything queued after it.
 */
export class Outbox {
  private readonly abort = new AbortController();
  private readonly idleWaiters: (() => void)[] = [];
  private readonly window: number;
  /** Unsettled messages per key, oldest first; the head is sent or ready, the rest wait. */
  private readonly chains = new Map<string, Entry[]>();
  /** Ready to send, urgent first; each array is consumed from its head index. */
  private urgentReady: Entry[] = [];
  private normalReady: Entry[] = [];
  private urgentHead = 0;
  private normalHead = 0;
  /** Fences not yet settled, oldest first, and the other messages queued after the oldest of them (not chained yet). */
  private readonly fences: Entry[] = [];
  private readonly behindFence: Entry[] = [];
  private nextSeq = 0;
  private unsettled = 0;
  private inFlight = 0;
  private unsent = 0;
  private js: JetStreamClient | undefined;

  constructor(private readonly opts: OutboxOptions) {
    this.window = Math.max(1, opts.window ?? OUTBOX_WINDOW);
  }

  /** Starts (or resumes) publishing through this client. */
  attach(js: JetStreamClient): void {
    this.js = js;
    this.kick();
  }

  /** Queues a message; resolves true once JetStream acknowledged it, false if it was dropped or the outbox closed first. */
  enqueue(subject: string, data: Uint8Array, msgID?: string, opts: EnqueueOptions = {}): Promise<boolean> {
    if (this.abort.signal.aborted) return Promise.resolve(false);
    return new Promise((settle) => {
      const e: Entry = {
        seq: this.nextSeq++,
        subject,
        data,
        msgID,
        key: opts.key ?? "",
        fence: opts.fence ?? false,
        urgent: opts.urgent ?? false,
        state: "waiting",
        settle,
      };
      this.unsettled++;
      this.unsent++;
      if (e.fence) {
        this.fences.push(e);
        this.readyFence();
      } else if (this.fences.length) {
        this.behindFence.push(e);
      } else {
        this.chain(e);
      }
      if (this.opts.maxItems !== undefined && this.unsent > this.opts.maxItems) this.dropOldestUnsent();
      this.kick();
    });
  }

  /** Messages not yet acknowledged. */
  get size(): number {
    return this.unsettled;
  }

  /** Resolves once every queued message was acknowledged (or the outbox closed). */
  idle(): Promise<void> {
    if (this.unsettled === 0 || this.abort.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops retrying; messages still waiting resolve false. */
  close(): void {
    this.abort.abort();
    const all = new Set<Entry>([...this.fences, ...this.behindFence]);
    for (const chain of this.chains.values()) for (const e of chain) all.add(e);
    this.chains.clear();
    this.fences.length = 0;
    this.behindFence.length = 0;
    this.urgentReady = [];
    this.normalReady = [];
    for (const e of all) {
      if (e.state === "done") continue;
      e.state = "done";
      e.settle(false);
    }
    this.unsettled = 0;
    this.unsent = 0;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  // Appends a message to its key's chain: ready at once when nothing of its key is unsettled.
  private chain(e: Entry): void {
    let chain = this.chains.get(e.key);
    if (!chain) this.chains.set(e.key, (chain = []));
    chain.push(e);
    if (chain.length === 1) this.makeReady(e);
    else if (e.urgent) {
      // Everything of its key queued before it goes out ahead of ordinary traffic too.
      for (const before of chain) {
        if (before === e) break;
        if (!before.urgent) {
          before.urgent = true;
          if (before.state === "ready") this.urgentReady.push(before); // its normal slot is skipped once sent
        }
      }
    }
  }

  private makeReady(e: Entry): void {
    e.state = "ready";
    (e.urgent ? this.urgentReady : this.normalReady).push(e);
  }

  private takeReady(): Entry | undefined {
    while (this.urgentHead < this.urgentReady.length) {
      const e = this.urgentReady[this.urgentHead++]!;
      if (e.state === "ready") return e;
    }
    if (this.urgentHead > 0) {
      this.urgentReady = [];
      this.urgentHead = 0;
    }
    while (this.normalHead < this.normalReady.length) {
      const e = this.normalReady[this.normalHead++]!;
      if (this.normalHead > 4096 && this.normalHead * 2 > this.normalReady.length) {
        this.normalReady = this.normalReady.slice(this.normalHead);
        this.normalHead = 0;
      }
      if (e.state === "ready") return e;
    }
    this.normalReady = [];
    this.normalHead = 0;
    return undefined;
  }

  private dropOldestUnsent(): void {
    let oldest: Entry | undefined;
    for (const chain of this.chains.values()) {
      for (const e of chain) {
        if (e.state !== "sent" && (!oldest || e.seq < oldest.seq)) oldest = e;
      }
    }
    if (!oldest) return;
    const chain = this.chains.get(oldest.key)!;
    const wasHead = chain[0] === oldest;
    chain.splice(chain.indexOf(oldest), 1);
    this.finish(oldest, false);
    if (wasHead) this.advance(oldest.key);
    this.readyFence();
  }

  private kick(): void {
    const js = this.js;
    if (!js || this.abort.signal.aborted) return;
    while (this.inFlight < this.window) {
      const e = this.takeReady();
      if (!e) break;
      e.state = "sent";
      this.inFlight++;
      this.unsent--;
      void publishUntilAcked(js, e.subject, e.data, e.msgID, { ...this.opts, signal: this.abort.signal }).then((acked) => this.acked(e, acked));
    }
  }

  private acked(e: Entry, acked: boolean): void {
    this.inFlight--;
    if (e.state === "done") return; // closed meanwhile
    if (e.fence) {
      this.fences.shift();
      this.finish(e, acked);
      this.releaseFences();
    } else {
      const chain = this.chains.get(e.key);
      if (chain?.[0] === e) chain.shift();
      this.finish(e, acked);
      this.advance(e.key);
      this.readyFence();
    }
    this.kick();
  }

  // The next message of a key becomes ready once the one before it settled.
  private advance(key: string): void {
    const chain = this.chains.get(key);
    if (!chain) return;
    const next = chain[0];
    if (!next) this.chains.delete(key);
    else if (next.state === "waiting") this.makeReady(next);
  }

  private finish(e: Entry, acked: boolean): void {
    if (e.state !== "sent") this.unsent--;
    e.state = "done";
    this.unsettled--;
    e.settle(acked);
    if (this.unsettled === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  // The oldest fence goes once nothing queued before it is unsettled: every message queued before it is chained.
  private readyFence(): void {
    const fence = this.fences[0];
    if (fence?.state === "waiting" && this.chains.size === 0) this.makeReady(fence);
  }

  // After a fence settled: the next fence goes once everything before it settled; messages behind no fence are chained.
  private releaseFences(): void {
    const next = this.fences[0];
    if (!next) {
      for (const e of this.behindFence.splice(0)) this.chain(e);
      return;
    }
    // Messages queued between the settled fence and the next one are chained now; the next fence waits for them.
    const between = this.behindFence.filter((e) => e.seq < next.seq);
    const later = this.behindFence.filter((e) => e.seq > next.seq);
    this.behindFence.length = 0;
    this.behindFence.push(...later);
    for (const e of between) this.chain(e);
    this.readyFence();
  }
}

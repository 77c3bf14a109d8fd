/**
 * Publishing to JetStream until the server acknowledges: while NATS is unreachable or the stream
 * does not exist yet, every publish is retried with a backoff (100 ms doubling to 2 s). The Outbox
 * keeps messages in order, so a task's `started` is always stored before its `ended`.
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
  /** Keep at most this many waiting messages, dropping the oldest (best-effort outboxes such as the DLQ). Default: unbounded. */
  readonly maxItems?: number;
}

interface Entry {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly msgID: string | undefined;
  readonly settle: (acked: boolean) => void;
}

/** An ordered queue of JetStream publishes, each retried until acknowledged before the next one goes. */
export class Outbox {
  private readonly queue: Entry[] = [];
  private readonly abort = new AbortController();
  private readonly idleWaiters: (() => void)[] = [];
  private pumping = false;
  private js: JetStreamClient | undefined;

  constructor(private readonly opts: OutboxOptions) {}

  /** Starts (or resumes) publishing through this client. */
  attach(js: JetStreamClient): void {
    this.js = js;
    this.kick();
  }

  /** Queues a message; resolves true once JetStream acknowledged it, false if it was dropped or the outbox closed first. */
  enqueue(subject: string, data: Uint8Array, msgID?: string): Promise<boolean> {
    if (this.abort.signal.aborted) return Promise.resolve(false);
    return new Promise((settle) => {
      this.queue.push({ subject, data, msgID, settle });
      if (this.opts.maxItems !== undefined && this.queue.length > this.opts.maxItems) {
        // never drop the head: it may be in flight
        const [dropped] = this.queue.splice(1, 1);
        dropped?.settle(false);
      }
      this.kick();
    });
  }

  /** Messages not yet acknowledged. */
  get size(): number {
    return this.queue.length;
  }

  /** Resolves once every queued message was acknowledged (or the outbox closed). */
  idle(): Promise<void> {
    if (this.queue.length === 0 || this.abort.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops retrying; messages still waiting resolve false. */
  close(): void {
    this.abort.abort();
    for (const e of this.queue.splice(0)) e.settle(false);
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private kick(): void {
    if (this.pumping || !this.js || this.abort.signal.aborted) return;
    this.pumping = true;
    void this.pump(this.js);
  }

  private async pump(js: JetStreamClient): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.abort.signal.aborted) {
        const head = this.queue[0]!;
        const acked = await publishUntilAcked(js, head.subject, head.data, head.msgID, { ...this.opts, signal: this.abort.signal });
        if (this.queue[0] === head) this.queue.shift();
        head.settle(acked);
      }
    } finally {
      this.pumping = false;
      if (this.queue.length === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }
}

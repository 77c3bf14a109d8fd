/** The CLI's side of the control protocol: connect, send a request, unwrap the reply. */
import { setTimeout as delay } from "node:timers/promises";
import { jetstream, DeliverPolicy, type ConsumerMessages, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Config } from "../config.js";
import { MusterError } from "../errors.js";
import { connectNats, jetStreamMissing, noJetStreamError } from "../nats/connect.js";
import { ReplySchema, createSubjects, encodeMessage, parseMessage, type CtlOp, type Message, type Subjects } from "../protocol/index.js";

function isNoResponders(err: unknown): boolean {
  const e = err as Error;
  return /no responders/i.test(e.message) || e.name === "NoRespondersError";
}

/** A connected CLI client. */
export class Client {
  readonly subjects: Subjects;
  readonly js: JetStreamClient;

  private constructor(
    readonly nc: NatsConnection,
    readonly cfg: Config,
  ) {
    this.subjects = createSubjects(cfg.prefix);
    this.js = jetstream(nc);
  }

  /** Connects (reconnecting on later outages, but failing fast at first). */
  static async open(cfg: Config, name = "muster-cli"): Promise<Client> {
    return new Client(await connectNats(cfg, { name }), cfg);
  }

  /** Sends a control request as the configured user; returns the reply's data or throws its error. */
  async request(op: CtlOp, message: Message): Promise<unknown> {
    const subject = this.subjects.ctl.op(op, this.cfg.user);
    let reply;
    // No responders is NATS's immediate answer when no supervisor subscribes. A supervisor restarting
    // (a crash, an upgrade) is away for a moment, so ask again for MUSTER_SUPERVISOR_WAIT; it is
    // short by default, since a supervisor that is down must be said at once (within 2 s in all).
    const start = Date.now();
    const rideOut = start + this.cfg.supervisorWaitSeconds * 1000;
    const giveUp = Math.max(rideOut, start + this.cfg.timeoutSeconds * 1000);
    for (let attempt = 0; ; attempt++) {
      try {
        reply = await this.nc.request(subject, encodeMessage(message), { timeout: Math.max(100, giveUp - Date.now()) });
        break;
      } catch (err) {
        const wait = Math.min(400, 100 * 2 ** attempt);
        if (isNoResponders(err) && Date.now() + wait <= rideOut) {
          await delay(wait);
          continue;
        }
        return this.requestFailed(op, subject, err);
      }
    }
    const parsed = parseMessage(ReplySchema, reply.data, subject);
    if (!parsed.ok) throw new MusterError("INTERNAL", `bad reply from the supervisor: ${parsed.message}`);
    if (!parsed.value.ok) throw MusterError.fromFailure(parsed.value.error);
    return parsed.value.data;
  }

  private async requestFailed(op: CtlOp, subject: string, err: unknown): Promise<never> {
    const e = err as Error;
    if (isNoResponders(err)) {
      // A supervisor cannot run without JetStream: when that is why nobody answers, say so.
      const why = await jetStreamMissing(this.nc);
      if (why) throw noJetStreamError(this.cfg, why);
      throw new MusterError("UNAVAILABLE", `no supervisor answers on ${subject}: start one with "muster up" or "muster supervisor"`);
    }
    if (/timeout/i.test(e.message)) throw new MusterError("TIMEOUT", `the supervisor did not answer ${op} within ${this.cfg.timeoutSeconds}s`);
    throw new MusterError("UNAVAILABLE", `${op} failed: ${e.message}`, undefined, { cause: err });
  }

  /**
   * Follows every message of a stream filtered to `subject` from the start, in order, across NATS
   * restarts. nats.js 3.4 recreates an ordered consumer after a reconnect, but miscounts its pending
   * pulls and then stalls until two idle heartbeats are missed (30 s by default); so on a reconnect,
   * a recreation or a failure the follower opens a fresh ordered consumer after the last message it
   * delivered (retrying while JetStream does not answer). A promise returned by `onMessage` holds
   * the next message back until it settles (a slow reader of muster run's output slows the follower).
   */
  async follow(
    stream: string,
    subject: string,
    onMessage: (m: JsMsg) => void | boolean | Promise<void>,
  ): Promise<{ stop(): void; done: Promise<void> }> {
    let nextSeq = 0;
    let stopped = false;
    const open = async (): Promise<ConsumerMessages> => {
      const from = nextSeq === 0 ? { deliver_policy: DeliverPolicy.All } : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: nextSeq };
      const consumer = await this.js.consumers.get(stream, { filter_subjects: subject, ...from });
      const messages = await consumer.consume();
      void (async () => {
        for await (const s of messages.status()) if (s.type === "ordered_consumer_recreated") void messages.close();
      })();
      return messages;
    };
    let current = await open();
    void (async () => {
      for await (const s of this.nc.status()) {
        if (stopped) break;
        if (s.type === "reconnect") void current.close();
      }
    })();
    const done = (async () => {
      try {
        while (!stopped) {
          try {
            for await (const m of current) {
              // Messages already buffered when stop() came are not handed on (output after the summary).
              if (stopped) break;
              nextSeq = m.seq + 1;
              const r = onMessage(m);
              if (r instanceof Promise) await r;
              if (stopped) break;
              if (r === false) {
                stopped = true;
                break;
              }
            }
          } catch {
            // the consumer failed: open another one
          }
          while (!stopped && !this.nc.isClosed()) {
            try {
              current = await open();
              break;
            } catch {
              await delay(250);
            }
          }
          if (this.nc.isClosed()) break;
        }
      } finally {
        void current.close();
      }
    })();
    return {
      stop: () => {
        stopped = true;
        void current.close();
      },
      done,
    };
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    await this.nc.drain().catch(() => undefined);
  }
}

/** Opens a client, runs `fn` with it and closes it, whatever `fn` does. */
export async function withClient(config: Config, fn: (c: Client) => Promise<number>, name?: string): Promise<number> {
  const c = await Client.open(config, name);
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

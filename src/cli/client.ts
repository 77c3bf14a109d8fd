/** The CLI's side of the control protocol: connect, send a request, unwrap the reply. */
import { jetstream, DeliverPolicy, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Config } from "../config.js";
import { MusterError } from "../errors.js";
import { connectNats } from "../nats/connect.js";
import { ReplySchema, createSubjects, encodeMessage, parseMessage, type CtlOp, type Message, type Subjects } from "../protocol/index.js";

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
    try {
      reply = await this.nc.request(subject, encodeMessage(message), { timeout: this.cfg.timeoutSeconds * 1000 });
    } catch (err) {
      const e = err as Error;
      if (/no responders/i.test(e.message) || e.name === "NoRespondersError") {
        throw new MusterError("UNAVAILABLE", `no supervisor answers on ${subject}: start one with "muster up" or "muster supervisor"`);
      }
      if (/timeout/i.test(e.message)) throw new MusterError("TIMEOUT", `the supervisor did not answer ${op} within ${this.cfg.timeoutSeconds}s`);
      throw new MusterError("UNAVAILABLE", `${op} failed: ${e.message}`, undefined, { cause: err });
    }
    const parsed = parseMessage(ReplySchema, reply.data, subject);
    if (!parsed.ok) throw new MusterError("INTERNAL", `bad reply from the supervisor: ${parsed.message}`);
    if (!parsed.value.ok) throw MusterError.fromFailure(parsed.value.error);
    return parsed.value.data;
  }

  /** Follows every message of a stream filtered to `subject` from the start, in order. */
  async follow(stream: string, subject: string, onMessage: (m: JsMsg) => void | boolean): Promise<{ stop(): void; done: Promise<void> }> {
    const consumer = await this.js.consumers.get(stream, { filter_subjects: subject, deliver_policy: DeliverPolicy.All });
    const messages = await consumer.consume();
    const done = (async () => {
      for await (const m of messages) {
        if (onMessage(m) === false) break;
      }
    })();
    return { stop: () => void messages.close(), done };
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    await this.nc.drain().catch(() => undefined);
  }
}

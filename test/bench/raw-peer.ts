/**
 * The raw-NATS references, each a separate process like the supervisor:
 *
 *   BENCH_MODE=relay    a durable pull consumer on `<subject>.in.>` (same settings as the supervisor's)
 *                       that parses every message (JSON) and, for a probe, republishes it to JetStream
 *                       on `<subject>.out.<id>` before acknowledging; storm messages are parsed and
 *                       acknowledged. This is the floor under muster's exit → notification path.
 *   BENCH_MODE=consume  on request `bench.<run>.raw.go {count}`: a durable pull consumer on
 *                       `<subject>.tp.>` that parses and acknowledges `count` messages; replies with the
 *                       time it took. This is the floor under the supervisor's event throughput.
 *
 * Environment: NATS_URL, BENCH_RUN_ID, BENCH_STREAM, BENCH_SUBJECT.
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { benchSubject, dec, enc } from "./lib.js";

const url = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const runId = process.env.BENCH_RUN_ID ?? "x";
const stream = process.env.BENCH_STREAM!;
const base = process.env.BENCH_SUBJECT!;
const mode = process.env.BENCH_MODE ?? "relay";

async function main(): Promise<void> {
  const nc = await connect({ servers: url, name: `bench-raw-${mode}` });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const durable = `raw_${mode}`;
  const filter = mode === "relay" ? `${base}.in.>` : `${base}.tp.>`;
  const addConsumer = () =>
    jsm.consumers.add(stream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: filter,
      max_ack_pending: 20_000,
      ack_wait: 30_000_000_000,
    });

  if (mode === "relay") {
    await addConsumer();
    const consumer = await js.consumers.get(stream, durable);
    const messages = await consumer.consume({ max_messages: 2000 });
    process.stdout.write("raw relay ready\n");
    for await (const m of messages) {
      const ev = JSON.parse(dec.decode(m.data)) as { id?: string; probe?: boolean; last?: boolean };
      if (ev.probe || ev.last) await js.publish(`${base}.out.${ev.id}`, m.data);
      m.ack();
    }
    return;
  }

  nc.subscribe(benchSubject(runId, "raw", "go"), {
    callback: (err, msg) => {
      if (err) return;
      const { count } = JSON.parse(dec.decode(msg.data)) as { count: number };
      void (async () => {
        const t0 = performance.now();
        await addConsumer();
        const consumer = await js.consumers.get(stream, durable);
        const messages = await consumer.consume({ max_messages: 2000 });
        let n = 0;
        let bytes = 0;
        for await (const m of messages) {
          const ev = JSON.parse(dec.decode(m.data)) as { rank?: number };
          bytes += ev.rank === undefined ? 0 : 1;
          m.ack();
          if (++n >= count) break;
        }
        await nc.flush();
        const ms = performance.now() - t0;
        await messages.close();
        msg.respond(enc.encode(JSON.stringify({ ok: true, ms, count: n, parsed: bytes })));
      })();
    },
  });
  await nc.flush();
  process.stdout.write("raw consumer ready\n");
}

main().catch((err: unknown) => {
  process.stderr.write(`raw-peer: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});

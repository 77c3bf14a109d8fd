/**
 * A load-generating agent: one process that speaks the real agent protocol for one or more nodes
 * (each with its own NATS connection named `muster-agent-<node>`, its own epoch, `hello` through
 * JetStream, heartbeats, `cmd.launch`/`cmd.signal` answered with `cmd.ack`) but starts no process.
 * Task events (`task.started`, `task.ended`) go to JetStream on `<p>.evt.<node>.<job>.<step>.<rank>`
 * with the real agent's message ids; unlike the real agent's strictly serial outbox, publishes are
 * pipelined (a window of acks in flight per node) so that one process can produce a storm.
 *
 * The bench runner drives it over core NATS request/reply on `bench.<run>.lg.<op>`:
 *   mode      {autoStart}                         publish task.started when a launch arrives (default true)
 *   launched  {job, ntasks}                       replies once `ntasks` ranks of `job` were launched here
 *                                                 (and their task.started acknowledged, with autoStart)
 *   exit      {job, started?, order?, failAt?, failCode?, code?, window?}
 *                                                 publishes task.ended for every rank of `job`
 *                                                 (task.started first when `started`), replies when acked
 *   rawstorm  {subject, count, template}          publishes `count` raw JetStream messages (the raw reference)
 *
 * Environment: NATS_URL, MUSTER_PREFIX, BENCH_RUN_ID, BENCH_NODES (comma-separated), BENCH_SLOTS,
 * MUSTER_HEARTBEAT_INTERVAL (seconds), BENCH_WINDOW (acks in flight per node).
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { connect, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { IdSet } from "../../src/idset/index.js";
import { NodeCommandSchema, createSubjects, encodeMessage, parseMessage, type CommandAck, type LaunchCommand, type Message, type StepId } from "../../src/protocol/index.js";
import { benchSubject, dec, enc, sleep } from "./lib.js";

const url = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const subjects = createSubjects(process.env.MUSTER_PREFIX ?? "muster");
const runId = process.env.BENCH_RUN_ID ?? "x";
const nodeNames = (process.env.BENCH_NODES ?? "lg-1").split(",").filter(Boolean);
const slots = Number(process.env.BENCH_SLOTS ?? 1);
const hbMs = Number(process.env.MUSTER_HEARTBEAT_INTERVAL ?? 2) * 1000;
const window = Number(process.env.BENCH_WINDOW ?? 128);

interface Pub {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly msgID?: string;
}

/** Publishes every item with up to `w` acknowledgements outstanding; each is retried until acked. */
async function publishAll(js: JetStreamClient, items: readonly Pub[], w: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      const it = items[i]!;
      for (let attempt = 0; ; attempt++) {
        try {
          await js.publish(it.subject, it.data, it.msgID ? { msgID: it.msgID, timeout: 10_000 } : { timeout: 10_000 });
          break;
        } catch (err) {
          if (attempt > 50) throw err;
          await sleep(Math.min(1000, 20 * 2 ** attempt));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(w, items.length)) }, worker));
}

interface Launched {
  readonly step: StepId;
  readonly ranks: number[];
  started: number;
  startedPending: number;
}

class FakeNode {
  readonly epoch = randomUUID().replaceAll("-", "");
  nc!: NatsConnection;
  js!: JetStreamClient;
  readonly jobs = new Map<string, Launched>();
  private seq = 0;

  constructor(readonly node: string) {}

  async start(): Promise<void> {
    this.nc = await connect({ servers: url, name: `muster-agent-${this.node}`, maxReconnectAttempts: -1 });
    this.js = jetstream(this.nc, { timeout: 10_000 });
    this.nc.subscribe(subjects.node.cmd(this.node), { callback: (err, msg) => (err ? undefined : this.onCommand(msg)) });
    await this.nc.flush();
    const hello: Message = {
      type: "hello",
      v: 1,
      node: this.node,
      epoch: this.epoch,
      slots,
      pid: process.pid,
      hostname: hostname() || "bench",
      version: "0.0.0-bench",
      at: Date.now(),
    };
    await this.js.publish(subjects.node.hello(this.node), encodeMessage(hello), { msgID: `${this.node}.${this.epoch}.hello.0` });
    setInterval(() => this.beat(), hbMs);
    this.beat();
  }

  private beat(): void {
    const hb: Message = { type: "heartbeat", v: 1, node: this.node, epoch: this.epoch, seq: this.seq++, at: Date.now(), running: 0 };
    this.nc.publish(subjects.node.hb(this.node), encodeMessage(hb));
  }

  private ack(msg: Msg, ok: boolean, message = ""): void {
    const a: CommandAck = ok
      ? { type: "cmd.ack", v: 1, node: this.node, epoch: this.epoch, ok: true }
      : { type: "cmd.ack", v: 1, node: this.node, epoch: this.epoch, ok: false, error: { code: "STALE_EPOCH", message } };
    msg.respond(encodeMessage(a));
  }

  private onCommand(msg: Msg): void {
    const parsed = parseMessage(NodeCommandSchema, msg.data, msg.subject);
    if (!parsed.ok) return this.ack(msg, false, parsed.message);
    const cmd = parsed.value;
    if (cmd.type === "cmd.ping") return this.ack(msg, true);
    if (cmd.epoch !== this.epoch) return this.ack(msg, false, "stale epoch");
    if (cmd.type !== "cmd.launch") return this.ack(msg, true);
    this.onLaunch(cmd);
    this.ack(msg, true);
  }

  private onLaunch(cmd: LaunchCommand): void {
    if (this.jobs.has(cmd.job)) return; // repeated launch
    const rec: Launched = { step: cmd.step, ranks: [...IdSet.parse(cmd.ranks)], started: 0, startedPending: 0 };
    this.jobs.set(cmd.job, rec);
    if (!autoStart) return;
    rec.startedPending = rec.ranks.length;
    const items = rec.ranks.map((rank) => this.started(cmd.job, cmd.step, rank));
    void publishAll(this.js, items, window).then(() => {
      rec.started = rec.ranks.length;
      rec.startedPending = 0;
    });
  }

  started(job: string, step: StepId, rank: number): Pub {
    const m: Message = { type: "task.started", v: 1, job, step, rank, node: this.node, epoch: this.epoch, pid: 1000 + (rank % 60000), at: Date.now() };
    return { subject: subjects.evt.task(this.node, job, step, rank), data: encodeMessage(m), msgID: `${job}.${step}.${rank}.${this.epoch}.started` };
  }

  ended(job: string, step: StepId, rank: number, code: number): Pub {
    const m: Message = {
      type: "task.ended",
      v: 1,
      job,
      step,
      rank,
      node: this.node,
      epoch: this.epoch,
      outcome: { kind: "exited", code },
      pid: 1000 + (rank % 60000),
      at: Date.now(),
    };
    return { subject: subjects.evt.task(this.node, job, step, rank), data: encodeMessage(m), msgID: `${job}.${step}.${rank}.${this.epoch}.ended` };
  }
}

let autoStart = true;
const nodes = nodeNames.map((n) => new FakeNode(n));

function shuffle<T>(a: T[], seed: number): T[] {
  let s = seed >>> 0 || 1;
  for (let i = a.length - 1; i > 0; i--) {
    s = (s * 1664525 + 1013904223) >>> 0;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

interface ExitReq {
  job: string;
  started?: boolean;
  order?: "rank" | "random";
  /** Fraction (0..1) of node 1's exits after which one task exits with `failCode`. */
  failAt?: number;
  failCode?: number;
  code?: number;
  /** Acknowledgements in flight per node (default BENCH_WINDOW); 1 is the real agent's serial outbox. */
  window?: number;
}

async function exitJob(req: ExitReq): Promise<{ events: number; ms: number; failRank?: number }> {
  const t0 = performance.now();
  let events = 0;
  let failRank: number | undefined;
  await Promise.all(
    nodes.map(async (n, i) => {
      const rec = n.jobs.get(req.job);
      if (!rec) return;
      const ranks = req.order === "random" ? shuffle([...rec.ranks], Number(req.job) * 7919 + i) : [...rec.ranks];
      const failIdx = i === 0 && req.failAt !== undefined ? Math.min(ranks.length - 1, Math.floor(req.failAt * ranks.length)) : -1;
      if (failIdx >= 0) failRank = ranks[failIdx];
      const items: Pub[] = [];
      if (req.started) for (const r of rec.ranks) items.push(n.started(req.job, rec.step, r));
      ranks.forEach((r, k) => items.push(n.ended(req.job, rec.step, r, k === failIdx ? (req.failCode ?? 1) : (req.code ?? 0))));
      events += items.length;
      await publishAll(n.js, items, req.window ?? window);
    }),
  );
  return { events, ms: performance.now() - t0, failRank };
}

async function rawStorm(req: { subject: string; count: number; template: Record<string, unknown>; lastMarker?: boolean; window?: number }): Promise<{ ms: number }> {
  const t0 = performance.now();
  const per = Math.ceil(req.count / nodes.length);
  await Promise.all(
    nodes.map(async (n, i) => {
      const items: Pub[] = [];
      for (let k = i * per; k < Math.min(req.count, (i + 1) * per); k++) {
        const body = { ...req.template, rank: k, id: `s${k}`, at: Date.now() };
        items.push({ subject: `${req.subject}.${k}`, data: enc.encode(JSON.stringify(body)) });
      }
      await publishAll(n.js, items, req.window ?? window);
    }),
  );
  if (req.lastMarker) {
    // The marker goes last, after every node's part was stored.
    const body = { ...req.template, last: true };
    await nodes[0]!.js.publish(`${req.subject}.last`, enc.encode(JSON.stringify(body)));
  }
  return { ms: performance.now() - t0 };
}

async function main(): Promise<void> {
  for (const n of nodes) await n.start();
  const ctl = nodes[0]!.nc;
  const serve = (op: string, fn: (body: any) => Promise<unknown> | unknown) => {
    ctl.subscribe(benchSubject(runId, "lg", op), {
      callback: (err, msg) => {
        if (err) return;
        const body = msg.data.length ? JSON.parse(dec.decode(msg.data)) : {};
        Promise.resolve()
          .then(() => fn(body))
          .then(
            (r) => msg.respond(enc.encode(JSON.stringify({ ok: true, ...(r as object) }))),
            (e: Error) => msg.respond(enc.encode(JSON.stringify({ ok: false, error: e.message }))),
          );
      },
    });
  };
  serve("mode", (b: { autoStart?: boolean }) => {
    autoStart = b.autoStart ?? true;
    return {};
  });
  serve("launched", async (b: { job: string; ntasks: number; timeoutMs?: number }) => {
    const end = Date.now() + (b.timeoutMs ?? 120_000);
    for (;;) {
      let launched = 0;
      let pending = 0;
      for (const n of nodes) {
        const r = n.jobs.get(b.job);
        if (r) {
          launched += r.ranks.length;
          pending += r.startedPending;
        }
      }
      if (launched >= b.ntasks && pending === 0) break;
      if (Date.now() > end) throw new Error(`job ${b.job}: ${launched}/${b.ntasks} launched, ${pending} started pending`);
      await sleep(2);
    }
    return {
      nodes: nodes
        .filter((n) => n.jobs.has(b.job))
        .map((n) => {
          const r = n.jobs.get(b.job)!;
          return { node: n.node, epoch: n.epoch, step: r.step, count: r.ranks.length, ranks: r.ranks.length <= 100 ? r.ranks : undefined };
        }),
    };
  });
  serve("exit", (b: ExitReq) => exitJob(b));
  serve("rawstorm", (b) => rawStorm(b));
  await ctl.flush();
  process.stdout.write(`loadgen ready ${nodes.map((n) => `${n.node}=${n.epoch}`).join(" ")}\n`);
  const stop = async () => {
    for (const n of nodes) await n.nc.drain().catch(() => undefined);
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop());
  process.once("SIGINT", () => void stop());
}

main().catch((err: unknown) => {
  process.stderr.write(`loadgen: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});

/**
 * `npm run bench`: muster's performance figures, each beside a raw-NATS reference measured in the
 * same run on the same nats-server, with the targets of issue #6.
 *
 *   node --import tsx test/bench/run.ts [--quick] [--json FILE] [--only GROUPS] [--profile DIR]
 *
 * Groups (all by default, in this order): latency, throughput, step, cli (with the idle footprint),
 * failures, real (real agents running real processes, beside srun when a Slurm answers).
 * Every process talks to one nats-server on 127.0.0.1 started here (test/support/nats-fixture.ts),
 * except the cli, failures and real groups, which run a real local cluster (test/support/cluster.ts) on its own server.
 * The supervisor, agents and CLI are the built binary (bin/muster.js): run `npm run build` first
 * (`npm run bench` does). See docs/performance.md for what each figure means.
 */
import { spawn } from "node:child_process";
import { createWriteStream, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { createSubjects, encodeMessage, type Message, type Subjects } from "../../src/protocol/index.js";
import { startCluster } from "../support/cluster.js";
import { failuresGroup } from "./failures.js";
import { REAL_PATH_SIZES, realPathGroup } from "./real-path.js";
import { startNatsServer, uniquePrefix, type NatsServerHandle } from "../support/nats-fixture.js";
import { benchSubject, cpuMsOf, dec, enc, fmtBytes, median, MUSTER_BIN, now, peakRssOf, quantile, ROOT, rssOf, sleep, startPeer, TSX, until, type BenchRow, type Peer } from "./lib.js";

// ---------------------------------------------------------------------------------------------
// Options and sizes

const { values: opts } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    json: { type: "string" },
    only: { type: "string" },
    profile: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (opts.help) {
  process.stdout.write("usage: npm run bench -- [--quick] [--json FILE] [--only latency,throughput,step,cli,failures,real] [--profile DIR]\n");
  process.exit(0);
}
const QUICK = Boolean(opts.quick);
const GROUPS = new Set((opts.only ?? "latency,throughput,step,cli,failures,real").split(",").map((s) => s.trim()));
const PROFILE_DIR = opts.profile ? resolve(opts.profile) : undefined;
if (PROFILE_DIR) mkdirSync(PROFILE_DIR, { recursive: true });

const SIZE = QUICK
  ? { idleSamples: 60, latencySamples: 60, warmup: 5, stormTasks: 10_000, stormRounds: 2, throughputTasks: 10_000, stepTasks: 20_000, cliRuns: 5 }
  : { idleSamples: 500, latencySamples: 200, warmup: 10, stormTasks: 10_000, stormRounds: 4, throughputTasks: 50_000, stepTasks: 100_000, cliRuns: 7 };

/**
 * Acknowledgements in flight per load-generating node during an exit storm. 1 is what a real agent
 * did before issue #16 (one event at a time, each acknowledged before the next), and the figures of
 * docs/performance.md keep it; a real agent now keeps up to 32 in flight (its outbox, OUTBOX_WINDOW),
 * which MUSTER_BENCH_STORM_WINDOW=32 reproduces for a harsher storm.
 */
const STORM_WINDOW = Number(process.env.MUSTER_BENCH_STORM_WINDOW ?? 1);
process.env.MUSTER_TEST_NATS ??= "binary"; // /proc readings and --cpu-prof need local processes
const RUN_ID = Math.random().toString(36).slice(2, 8);
const USER = "bench";
const started = Date.now();

function load1(): number {
  return loadavg()[0]!;
}

function log(s: string): void {
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${s}\n`);
}

// ---------------------------------------------------------------------------------------------
// Results

type Row = BenchRow;

const rows: Row[] = [];
const failures: string[] = [];
const details: Record<string, unknown> = {};

function add(row: Row): void {
  rows.push(row);
  log(`${row.name}: ${fmt(row.muster, row.unit)}${row.raw !== undefined ? ` (raw ${fmt(row.raw, row.unit)})` : ""}${row.target ? ` target ${row.target}: ${row.pass ? "pass" : "MISS"}` : ""}`);
}

function fmt(v: number | undefined, unit: Row["unit"]): string {
  if (v === undefined || Number.isNaN(v)) return "-";
  switch (unit) {
    case "ms":
      return v < 10 ? `${v.toFixed(2)} ms` : `${v.toFixed(0)} ms`;
    case "ev/s":
      return `${Math.round(v).toLocaleString("en-US")}/s`;
    case "B":
      return fmtBytes(v);
    case "B/task":
      return `${Math.round(v)} B/task`;
    case "MB":
      return `${(v / 1e6).toFixed(1)} MB`;
  }
}

function printTable(): void {
  const header = ["group", "figure", "muster", "raw NATS reference", "ratio", "srun", "target", "result"];
  const body = rows.map((r) => [
    r.group,
    r.name,
    fmt(r.muster, r.unit),
    r.raw === undefined ? "-" : `${fmt(r.raw, r.unit)}${r.rawName ? ` (${r.rawName})` : ""}`,
    r.raw === undefined || r.raw === 0 ? "-" : `${(r.muster / r.raw).toFixed(2)}x`,
    r.srun === undefined ? "" : fmt(r.srun, r.unit),
    r.target ?? "-",
    r.pass === undefined ? "" : r.pass ? "pass" : "MISS",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  process.stdout.write(`\n${line(header)}\n${widths.map((w) => "-".repeat(w)).join("  ")}\n`);
  for (const b of body) process.stdout.write(`${line(b)}\n`);
  const missed = rows.filter((r) => r.pass === false);
  for (const f of failures) process.stdout.write(`\nGROUP FAILED: ${f}`);
  process.stdout.write(`\n${rows.filter((r) => r.pass !== undefined).length - missed.length} targets met, ${missed.length} missed${missed.length ? `: ${missed.map((r) => r.name).join("; ")}` : ""}\n`);
}

// ---------------------------------------------------------------------------------------------
// One muster installation on the shared nats-server: a supervisor, a load-generating agent process
// hosting some nodes, and the runner's own connection (control requests, exitcodes subscriber).

interface Arrival {
  readonly t: number;
  readonly bytes: number;
  readonly msg: Record<string, unknown>;
}

interface LaunchedNode {
  readonly node: string;
  readonly epoch: string;
  readonly step: number;
  readonly count: number;
  readonly ranks?: number[];
}

/** Installations of the group running now, for diagnostics when it fails. */
const installs = new Set<Install>();

class Install {
  readonly subjects: Subjects;
  readonly env: Record<string, string>;
  sup!: Peer;
  lg!: Peer;
  nc!: NatsConnection;
  js!: JetStreamClient;
  jsm!: JetStreamManager;
  private readonly waiters = new Map<string, (a: Arrival) => void>();
  private readonly arrived = new Map<string, Arrival>();

  constructor(
    readonly group: string,
    readonly nats: NatsServerHandle,
    readonly nodes: readonly string[],
    extraEnv: Record<string, string> = {},
  ) {
    const prefix = uniquePrefix(group);
    this.subjects = createSubjects(prefix);
    this.env = {
      NATS_URL: nats.url,
      MUSTER_PREFIX: prefix,
      MUSTER_USER: USER,
      MUSTER_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "info",
      BENCH_RUN_ID: `${RUN_ID}_${group}`, // each installation's load generator answers on its own subjects
      ...extraEnv,
    };
  }

  async start(o: { autoStart?: boolean; memFile?: string } = {}): Promise<void> {
    installs.add(this);
    this.nc = await connect({ servers: this.nats.url, name: `bench-runner-${this.group}` });
    this.js = jetstream(this.nc);
    this.jsm = await jetstreamManager(this.nc);
    this.nc.subscribe(this.subjects.job.exitCodesAll, {
      callback: (err, m) => {
        const t = now();
        if (err) return;
        const msg = JSON.parse(dec.decode(m.data)) as Record<string, unknown>;
        const key = `${String(msg.type)}/${String(msg.job)}`;
        const a = { t, bytes: m.data.length, msg };
        this.arrived.set(key, a);
        this.waiters.get(key)?.(a);
        this.waiters.delete(key);
      },
    });
    await this.nc.flush();
    await this.startSupervisor(o.memFile);
    this.lg = startPeer("loadgen", [...TSX, resolve(ROOT, "test/bench/loadgen-agent.ts")], {
      ...this.env,
      BENCH_NODES: this.nodes.join(","),
      BENCH_SLOTS: "1000000", // slots never limit a benchmark job
    });
    await this.lg.waitLine(/loadgen ready/, 30_000);
    if (o.autoStart === false) await this.lgRequest("mode", { autoStart: false });
    await until(
      "load-generating nodes online",
      async () => {
        const nodes = (await this.ctl("query", { type: "query", v: 1, what: "nodes" })) as { node: string; state: string }[];
        return this.nodes.every((n) => nodes.some((x) => x.node === n && x.state === "online"));
      },
      30_000,
      50,
    );
  }

  /** When the supervisor process was spawned (`now()` clock). */
  supStartedAt = 0;

  async startSupervisor(memFile?: string): Promise<void> {
    this.supStartedAt = now();
    const nodeArgs: string[] = [];
    if (PROFILE_DIR) nodeArgs.push("--cpu-prof", "--cpu-prof-dir", PROFILE_DIR, "--cpu-prof-name", `supervisor-${this.group}-${RUN_ID}.cpuprofile`);
    if (process.env.BENCH_SUP_NODE_ARGS) nodeArgs.push(...process.env.BENCH_SUP_NODE_ARGS.split(" ").filter(Boolean));
    if (memFile) nodeArgs.push("--expose-gc", "--import", pathToFileURL(resolve(ROOT, "test/bench/memprobe.mjs")).href);
    this.sup = startPeer("supervisor", [...nodeArgs, MUSTER_BIN, "supervisor"], { ...this.env, ...(memFile ? { MUSTER_BENCH_MEMFILE: memFile } : {}) });
    // A node that leaves `online` during a benchmark invalidates it (and is itself a finding): say so.
    let partial = "";
    if (process.env.BENCH_SUPLOG) {
      const out = createWriteStream(`${process.env.BENCH_SUPLOG}-${this.group}.log`);
      this.sup.proc.stderr!.on("data", (d: Buffer) => out.write(d));
      this.sup.proc.stdout!.on("data", (d: Buffer) => out.write(d));
    }
    this.sup.proc.stderr!.on("data", (d: Buffer) => {
      const lines = (partial + d.toString("utf8")).split("\n");
      partial = lines.pop() ?? "";
      for (const l of lines) {
        if (!l.includes('"msg":"node.state"') && !l.includes('"msg":"node.lost"')) continue;
        const m = JSON.parse(l) as { node?: string; from?: string; to?: string; msg: string };
        if (m.msg === "node.state" && m.to === "online") continue;
        const what = m.msg === "node.lost" ? "lost" : `${m.from} -> ${m.to}`;
        const counts = ((details.nodeIncidents ??= {}) as Record<string, Record<string, number>>)[this.group] ??= {};
        if (!counts[what]) log(`${this.group}: supervisor: node ${m.node} ${what} (later ones are counted in the JSON details)`);
        counts[what] = (counts[what] ?? 0) + 1;
      }
    });
    await this.sup.waitLine(/"msg":"supervisor\.started"/, 30_000);
  }

  /** A control request as user `bench`; returns the reply's data or throws its error. */
  async ctl(op: "submit" | "query" | "kill", body: Message, timeout = 30_000): Promise<unknown> {
    const r = await this.nc.request(this.subjects.ctl.op(op, USER), encodeMessage(body), { timeout });
    const reply = JSON.parse(dec.decode(r.data)) as { ok: boolean; data?: unknown; error?: { code: string; message: string } };
    if (!reply.ok) throw new Error(`${op}: ${reply.error?.code}: ${reply.error?.message}`);
    return reply.data;
  }

  /** Submits a `true` job of `ntasks` tasks, spread evenly over every load-generating node when it has more than one task. */
  async submit(ntasks: number): Promise<string> {
    const spread = ntasks > 1 ? { nodes: Math.min(ntasks, this.nodes.length) } : {};
    const data = (await this.ctl("submit", {
      ...spread,
      type: "submit",
      v: 1,
      user: USER,
      argv: ["true"],
      env: {},
      cwd: "/tmp",
      ntasks,
      label: false,
      killOnBadExit: false,
    })) as { job: string };
    return data.job;
  }

  async lgRequest<T = Record<string, unknown>>(op: string, body: unknown, timeout = 120_000): Promise<T> {
    const r = await this.nc.request(benchSubject(this.env.BENCH_RUN_ID!, "lg", op), enc.encode(JSON.stringify(body)), { timeout });
    const reply = JSON.parse(dec.decode(r.data)) as { ok: boolean; error?: string };
    if (!reply.ok) throw new Error(`loadgen ${op}: ${reply.error}`);
    return reply as T;
  }

  /** Waits until the load generator launched the job's tasks (and, with autoStart, their task.started was stored). */
  async launched(job: string, ntasks: number, timeout = 120_000): Promise<LaunchedNode[]> {
    const r = await this.lgRequest<{ nodes: LaunchedNode[] }>("launched", { job, ntasks, timeoutMs: timeout }, timeout + 5_000);
    return r.nodes;
  }

  /** Resolves when a `step.first_failure` / `step.summary` of `job` arrives (or has arrived). */
  arrival(type: "step.first_failure" | "step.summary", job: string): Promise<Arrival> {
    const key = `${type}/${job}`;
    const seen = this.arrived.get(key);
    if (seen) return Promise.resolve(seen);
    return new Promise((res) => this.waiters.set(key, res));
  }

  /** Waits until the supervisor's durable consumer has nothing pending or unacknowledged. */
  async quiesce(timeout = 120_000): Promise<void> {
    await until(
      "the supervisor to acknowledge every event",
      async () => {
        const info = await this.jsm.consumers.info(this.subjects.streams.events.name, "supervisor");
        return info.num_pending === 0 && info.num_ack_pending === 0;
      },
      timeout,
      3,
    );
  }

  /** The task.ended an agent of `node` would publish for `rank`; returns its subject, payload and message id. */
  endedEvent(job: string, n: LaunchedNode, rank: number, code: number): { subject: string; data: Uint8Array; msgID: string } {
    const m: Message = {
      type: "task.ended",
      v: 1,
      job,
      step: n.step,
      rank,
      node: n.node,
      epoch: n.epoch,
      outcome: { kind: "exited", code },
      pid: 4242,
      at: Date.now(),
    };
    return { subject: this.subjects.evt.task(n.node, job, n.step, rank), data: encodeMessage(m), msgID: `${job}.${n.step}.${rank}.${n.epoch}.ended` };
  }

  async stop(): Promise<void> {
    installs.delete(this);
    await this.lg?.stop(5_000);
    await this.sup?.stop(30_000);
    const names = [...Object.values(this.subjects.streams).map((s) => s.name), `KV_${this.subjects.buckets.snapshots}`];
    for (const n of names) await this.jsm.streams.delete(n).catch(() => undefined);
    await this.nc.close();
  }
}

/** A raw stream `BENCHRAW_<id>` capturing `benchraw.<id>.>`, for the reference measurements. */
async function rawStream(jsm: JetStreamManager, id: string): Promise<{ name: string; base: string; drop(): Promise<void> }> {
  const name = `BENCHRAW_${id}`;
  const base = `benchraw.${id}`;
  await jsm.streams.add({ name, subjects: [`${base}.>`], duplicate_window: 120_000_000_000 });
  return { name, base, drop: async () => void (await jsm.streams.delete(name).catch(() => undefined)) };
}

/** A payload shaped like a task.ended event, for the raw references. */
function rawTemplate(): Record<string, unknown> {
  return {
    type: "task.ended",
    v: 1,
    job: "123",
    step: 0,
    node: "lg-1",
    epoch: "0123456789abcdef0123456789abcdef",
    outcome: { kind: "exited", code: 0 },
    pid: 4242,
  };
}

// ---------------------------------------------------------------------------------------------
// Group: notification latency, idle and during an exit storm

async function latencyGroup(nats: NatsServerHandle): Promise<void> {
  log("latency: starting supervisor and load generator (4 nodes)");
  // The default node timeout (10 s): a supervisor that fell behind a storm would declare the healthy
  // load-generating nodes suspect or lost; such incidents are counted in the JSON details (nodeIncidents).
  const inst = new Install("latency", nats, ["lg-1", "lg-2", "lg-3", "lg-4"]);
  await inst.start();
  const raw = await rawStream(inst.jsm, `lat_${RUN_ID}`);
  const relay = startPeer("raw-relay", [...TSX, resolve(ROOT, "test/bench/raw-peer.ts")], {
    NATS_URL: nats.url,
    BENCH_RUN_ID: RUN_ID,
    BENCH_STREAM: raw.name,
    BENCH_SUBJECT: raw.base,
    BENCH_MODE: "relay",
  });
  await relay.waitLine(/raw relay ready/);
  const rawArrivals = new Map<string, number>();
  const rawWaiters = new Map<string, (t: number) => void>();
  inst.nc.subscribe(`${raw.base}.out.>`, {
    callback: (_err, m) => {
      const t = now();
      const id = m.subject.slice(`${raw.base}.out.`.length);
      rawArrivals.set(id, t);
      rawWaiters.get(id)?.(t);
      rawWaiters.delete(id);
    },
  });
  await inst.nc.flush();
  const rawArrival = (id: string) => (rawArrivals.has(id) ? Promise.resolve(rawArrivals.get(id)!) : new Promise<number>((r) => rawWaiters.set(id, r)));
  const rawProbe = (id: string) => enc.encode(JSON.stringify({ ...rawTemplate(), id, probe: true, at: Date.now() }));

  // A probe job: one task, launched on lg-1 and started; its exit (code 1) is the probe.
  const prepareProbe = async () => {
    const job = await inst.submit(1);
    const [n] = await inst.launched(job, 1);
    return { job, n: n! };
  };
  const fire = (p: { job: string; n: LaunchedNode }) => {
    const ev = inst.endedEvent(p.job, p.n, 0, 1);
    const ff = inst.arrival("step.first_failure", p.job);
    const t0 = now();
    const pub = inst.js.publish(ev.subject, ev.data, { msgID: ev.msgID });
    return { t0, ff, pub };
  };

  // Idle: one job per sample, muster and raw interleaved so both see the same machine.
  const idle: number[] = [];
  const idleRaw: number[] = [];
  const idleAt: number[] = [];
  // 500 samples: the p99 is then the 5th or 6th slowest, not the 2nd or 3rd, and moves less from run to run.
  const total = SIZE.idleSamples + SIZE.warmup;
  log(`latency: ${total} idle samples (first ${SIZE.warmup} are warm-up)`);
  for (let i = 0; i < total; i++) {
    const p = await prepareProbe();
    await inst.quiesce();
    const f = fire(p);
    const ff = await f.ff;
    await f.pub;
    await inst.arrival("step.summary", p.job);
    await inst.quiesce();
    const id = `i${i}`;
    const arrived = rawArrival(id);
    const t0 = now();
    await inst.js.publish(`${raw.base}.in.${id}`, rawProbe(id));
    const t1 = await arrived;
    if (i >= SIZE.warmup) {
      idle.push(ff.t - f.t0);
      idleRaw.push(t1 - t0);
      idleAt.push(Math.round(f.t0 - inst.supStartedAt));
    }
  }
  details.latencyIdle = {
    samples: idle.length,
    musterMs: summarize(idle),
    rawMs: summarize(idleRaw),
    // The slowest samples, with when they were taken (ms since the supervisor started), to line up with its GC trace.
    slowest: idle
      .map((ms, k) => ({ ms: Math.round(ms * 100) / 100, raw: Math.round(idleRaw[k]! * 100) / 100, at: idleAt[k] }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 8),
  };
  add({ group: "latency", name: `idle notification p50 (${idle.length} samples)`, unit: "ms", muster: quantile(idle, 0.5), raw: quantile(idleRaw, 0.5) });
  const p99 = quantile(idle, 0.99);
  const rawP99 = quantile(idleRaw, 0.99);
  add({ group: "latency", name: "idle notification p99", unit: "ms", muster: p99, raw: rawP99, target: "<= 2x raw", pass: p99 <= 2 * rawP99 });

  // Storm: probe jobs fired while another job's 10,000 exits are being published and processed.
  const storm: { ms: number; firedAt: number }[] = [];
  const stormRaw: { ms: number; firedAt: number }[] = [];
  const stormInfo: Record<string, unknown>[] = [];
  let interval = 10;
  const perRound = Math.ceil((SIZE.latencySamples * 1.3) / SIZE.stormRounds);
  for (let round = 0; round < SIZE.stormRounds && storm.length < SIZE.latencySamples; round++) {
    log(`latency: storm round ${round + 1}: preparing ${perRound} probe jobs and a ${SIZE.stormTasks}-task job`);
    const probes = [];
    for (let k = 0; k < perRound; k++) probes.push(await prepareProbe());
    const stormJob = await inst.submit(SIZE.stormTasks);
    await inst.launched(stormJob, SIZE.stormTasks);
    await inst.quiesce();
    const summary = inst.arrival("step.summary", stormJob);
    let over = false;
    void summary.then(() => (over = true));
    const cpu0 = cpuMsOf(inst.sup.pid);
    const tStorm = now();
    const exits = inst.lgRequest<{ events: number; ms: number }>("exit", { job: stormJob, order: "rank", code: 0, window: STORM_WINDOW });
    const fired: Promise<void>[] = [];
    let used = 0;
    while (!over && used < probes.length) {
      const f = fire(probes[used++]!);
      const firedAt = f.t0 - tStorm;
      fired.push(f.ff.then((a) => void storm.push({ ms: a.t - f.t0, firedAt })));
      await sleep(interval);
    }
    const published = await exits;
    const s = await summary;
    const stormMs = s.t - tStorm;
    await Promise.all(fired);
    stormInfo.push({
      round,
      interval,
      probes: used,
      publishMs: Math.round(published.ms),
      processedMs: Math.round(stormMs),
      supervisorCpuMs: (cpuMsOf(inst.sup.pid) ?? 0) - (cpu0 ?? 0),
    });
    // Finish the unused probe jobs (not counted) so that they leave the supervisor.
    for (const p of probes.slice(used)) await fire(p).ff;
    await inst.quiesce();
    // Spread next round's probes over the whole storm.
    interval = Math.max(2, Math.min(100, Math.floor(stormMs / perRound)));

    log(`latency: raw storm round ${round + 1}`);
    // The raw relay keeps up with the publisher, so its storm lasts about as long as the publishing.
    const rawInterval = Math.max(2, Math.min(100, Math.floor(published.ms / perRound)));
    const rawDone = rawArrival(`stormdone${round}`);
    let rawOver = false;
    void rawDone.then(() => (rawOver = true));
    const tRaw = now();
    const rawStormReq = inst.lgRequest("rawstorm", { subject: `${raw.base}.in.r${round}`, count: SIZE.stormTasks, template: { ...rawTemplate(), id: `stormdone${round}` }, lastMarker: true, window: STORM_WINDOW });
    const rawFired: Promise<void>[] = [];
    for (let k = 0; !rawOver && k < perRound; k++) {
      const id = `s${round}_${k}`;
      const arrived = rawArrival(id);
      const t0 = now();
      const firedAt = t0 - tRaw;
      void inst.js.publish(`${raw.base}.in.${id}`, rawProbe(id));
      rawFired.push(arrived.then((t) => void stormRaw.push({ ms: t - t0, firedAt })));
      await sleep(rawInterval);
    }
    await rawStormReq;
    await rawDone;
    await Promise.all(rawFired);
  }
  details.latencyStorm = {
    samples: storm.length,
    musterMs: summarize(storm.map((s) => s.ms)),
    rawSamples: stormRaw.length,
    rawMs: summarize(stormRaw.map((s) => s.ms)),
    rounds: stormInfo,
  };
  const sp50 = quantile(storm.map((s) => s.ms), 0.5);
  const sp99 = quantile(storm.map((s) => s.ms), 0.99);
  add({ group: "latency", name: `storm notification p50 (${storm.length} samples)`, unit: "ms", muster: sp50, raw: quantile(stormRaw.map((s) => s.ms), 0.5) });
  add({ group: "latency", name: "storm notification p99", unit: "ms", muster: sp99, raw: quantile(stormRaw.map((s) => s.ms), 0.99), target: "<= 50 ms", pass: sp99 <= 50 });
  const lag = Math.max(...stormInfo.map((r) => (r.processedMs as number) - (r.publishMs as number)));
  add({ group: "latency", name: "storm: supervisor behind the agents at the end (worst round)", unit: "ms", muster: Math.max(0, lag) });
  await relay.stop();
  await raw.drop();
  await inst.stop();
}

function summarize(v: readonly number[]): Record<string, number> {
  const r = (x: number) => Math.round(x * 100) / 100;
  return { n: v.length, min: r(Math.min(...v)), p50: r(quantile(v, 0.5)), p90: r(quantile(v, 0.9)), p99: r(quantile(v, 0.99)), max: r(Math.max(...v)) };
}

// ---------------------------------------------------------------------------------------------
// Group: supervisor throughput (stream → persisted state), against a raw consumer

async function throughputGroup(nats: NatsServerHandle): Promise<void> {
  const n = SIZE.throughputTasks;
  // Node timeout 120 s: the supervisor is frozen (SIGSTOP) while the backlog is stored, and hears no heartbeat.
  const inst = new Install("throughput", nats, ["lg-1", "lg-2", "lg-3", "lg-4"], { MUSTER_NODE_TIMEOUT: "120" });
  await inst.start({ autoStart: false });
  const figures: Record<string, unknown>[] = [];
  let events = 0;
  // A warm-up job first (not counted), so that both measured jobs run on a warmed-up JIT; then exits
  // in rank order (each node's tasks end in turn) and in random order (tasks end when they end).
  for (const order of ["warm-up", "rank", "random"] as const) {
    const tasks = order === "warm-up" ? Math.min(n, 5_000) : n;
    log(`throughput: one job of ${tasks} tasks, ${2 * tasks} events (exits in ${order === "warm-up" ? "rank" : order} order) published while the supervisor is paused`);
    const job = await inst.submit(tasks);
    await inst.launched(job, tasks);
    await inst.quiesce();
    inst.sup.proc.kill("SIGSTOP");
    const pub = await inst.lgRequest<{ events: number; ms: number }>("exit", { job, started: true, order: order === "random" ? "random" : "rank", code: 0 }, 300_000);
    const summary = inst.arrival("step.summary", job);
    const cpu0 = cpuMsOf(inst.sup.pid) ?? 0;
    const t0 = now();
    inst.sup.proc.kill("SIGCONT");
    const s = await summary;
    const ms = s.t - t0;
    await inst.quiesce(300_000);
    const ackedMs = now() - t0;
    const cpuMs = (cpuMsOf(inst.sup.pid) ?? 0) - cpu0;
    if (order === "warm-up") continue;
    events = pub.events;
    figures.push({
      order,
      tasks: n,
      events: pub.events,
      publishMs: Math.round(pub.ms),
      toSummaryMs: Math.round(ms),
      toAllAckedMs: Math.round(ackedMs),
      supervisorCpuMs: cpuMs,
      cpuUsPerEvent: Math.round((cpuMs * 1000) / pub.events),
      rate: Math.round((pub.events / ms) * 1000),
    });
  }

  log("throughput: raw consumer reference");
  const raw = await rawStream(inst.jsm, `tp_${RUN_ID}`);
  await inst.lgRequest("rawstorm", { subject: `${raw.base}.tp`, count: events, template: rawTemplate() }, 300_000);
  const consumer = startPeer("raw-consumer", [...TSX, resolve(ROOT, "test/bench/raw-peer.ts")], {
    NATS_URL: nats.url,
    BENCH_RUN_ID: RUN_ID,
    BENCH_STREAM: raw.name,
    BENCH_SUBJECT: raw.base,
    BENCH_MODE: "consume",
  });
  await consumer.waitLine(/raw consumer ready/);
  const r = await inst.nc.request(benchSubject(RUN_ID, "raw", "go"), enc.encode(JSON.stringify({ count: events })), { timeout: 300_000 });
  const rawMs = (JSON.parse(dec.decode(r.data)) as { ms: number }).ms;
  const rawRate = (events / rawMs) * 1000;
  await consumer.stop();
  await raw.drop();
  details.throughput = { runs: figures, rawMs: Math.round(rawMs), rawRate: Math.round(rawRate) };
  for (const f of figures) {
    const rate = f.rate as number;
    add({ group: "throughput", name: `supervisor events/s, ${String(f.order)}-order exits (${events} events)`, unit: "ev/s", muster: rate, raw: rawRate, rawName: "parse+ack", target: ">= 0.5x raw", pass: rate >= 0.5 * rawRate });
  }
  await inst.stop();
}

// ---------------------------------------------------------------------------------------------
// Group: a 100,000-task step

async function stepGroup(nats: NatsServerHandle): Promise<void> {
  const n = SIZE.stepTasks;
  log(`step: one step of ${n} tasks on 4 load-generating nodes`);
  const memFile = join(tmpdir(), `muster-bench-mem-${RUN_ID}.json`);
  const inst = new Install("step", nats, ["lg-1", "lg-2", "lg-3", "lg-4"]);
  await inst.start({ memFile });
  const mem = async () => {
    const before = Date.now();
    inst.sup.proc.kill("SIGUSR2");
    let m: { heapUsed: number; rss: number; at: number; external: number; arrayBuffers: number } | undefined;
    await until(
      "the supervisor's memory report",
      () => {
        try {
          m = JSON.parse(readFileSync(memFile, "utf8"));
          return m!.at >= before;
        } catch {
          return false;
        }
      },
      120_000,
      20,
    );
    return { heap: m!.heapUsed, external: m!.external, rss: rssOf(inst.sup.pid)! };
  };
  await sleep(500);
  const m0 = await mem();
  let peak = rssOf(inst.sup.pid)!;
  const sampler = setInterval(() => (peak = Math.max(peak, rssOf(inst.sup.pid) ?? 0)), 50);
  const tSubmit = now();
  const job = await inst.submit(n);
  const submitMs = now() - tSubmit;
  await inst.launched(job, n, 300_000);
  await inst.quiesce(300_000);
  const startedMs = now() - tSubmit;
  const m1 = await mem();
  const ff = inst.arrival("step.first_failure", job);
  const summary = inst.arrival("step.summary", job);
  const tExit = now();
  const cpuExit0 = cpuMsOf(inst.sup.pid) ?? 0;
  const pub = await inst.lgRequest<{ events: number; ms: number; failRank: number }>("exit", { job, order: "random", failAt: 0.5, failCode: 1 }, 300_000);
  const tLast = now();
  const s = await summary;
  const f = await ff;
  await inst.quiesce(300_000);
  const exitCpuMs = (cpuMsOf(inst.sup.pid) ?? 0) - cpuExit0;
  const m2 = await mem();
  clearInterval(sampler);
  peak = Math.max(peak, peakRssOf(inst.sup.pid) ?? 0);
  const heapLive = (m1.heap - m0.heap) / n;
  const heapAfter = (m2.heap - m0.heap) / n;
  const heapPerTask = Math.max(heapLive, heapAfter);
  const rssPerTask = (peak - m0.rss) / n;
  const rssAfterPerTask = (m2.rss - m0.rss) / n;
  const afterLast = s.t - tLast;
  details.step = {
    tasks: n,
    submitMs: Math.round(submitMs),
    submitToAllStartedMs: Math.round(startedMs),
    exitPublishMs: Math.round(pub.ms),
    firstExitToSummaryMs: Math.round(s.t - tExit),
    lastExitToSummaryMs: Math.round(afterLast),
    exitsSupervisorCpuMs: exitCpuMs,
    cpuUsPerExit: Math.round((exitCpuMs * 1000) / n),
    failRank: pub.failRank,
    notificationBytes: f.bytes,
    summaryBytes: s.bytes,
    notificationForm: "packed" in f.msg ? "packed" : "counts" in f.msg ? "counts" : "groups",
    notificationGroups: Object.fromEntries(Object.entries((f.msg.groups ?? {}) as Record<string, string>).map(([k, v]) => [k, v.length])),
    memory: { before: m0, live: m1, after: m2, peakRss: peak },
    liveEventsPerSecond: Math.round((2 * n) / ((s.t - tSubmit) / 1000)),
    rssPerTaskAfter: Math.round(rssAfterPerTask),
    heapPerTaskLive: Math.round(heapLive),
    heapPerTaskAfter: Math.round(heapAfter),
  };
  add({ group: "step", name: `heap growth per task (${n} tasks)`, unit: "B/task", muster: heapPerTask, target: "<= 1 KiB/task", pass: heapPerTask <= 1024 });
  add({ group: "step", name: "peak RSS growth per task", unit: "B/task", muster: rssPerTask });
  add({ group: "step", name: "exits processed per second, live (first exit to summary)", unit: "ev/s", muster: (n / (s.t - tExit)) * 1000 });
  add({ group: "step", name: "final summary after last exit", unit: "ms", muster: Math.max(0, afterLast), target: "<= 5 s", pass: afterLast <= 5000 });
  add({ group: "step", name: "first-failure notification size", unit: "B", muster: f.bytes, target: "< 64 KiB", pass: f.bytes < 64 * 1024 });
  await inst.stop();
  rmSync(memFile, { force: true });
}

// ---------------------------------------------------------------------------------------------
// Group: CLI latency and idle footprint, on a real local cluster (supervisor + 2 real agents)

function timeProcess(args: readonly string[], env: Record<string, string> = {}): Promise<{ ms: number; code: number | null; out: string }> {
  return new Promise((res) => {
    const t0 = now();
    const p = spawn(process.execPath, [...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    p.once("close", (code) => res({ ms: now() - t0, code, out }));
  });
}

async function cliGroup(): Promise<void> {
  log("cli: starting a local cluster (nats-server, supervisor, 2 agents)");
  const cluster = await startCluster({
    agents: 2,
    slots: 128, // 256 tasks over 2 agents
    env: { MUSTER_LOG_LEVEL: "info", MUSTER_HEARTBEAT_INTERVAL: "2", MUSTER_NODE_TIMEOUT: "10" },
  });
  try {
    // Idle footprint first, on a cluster that has run nothing yet.
    const idleRef = startPeer("idle-ref", [
      "--input-type=module",
      "-e",
      `import { connect } from "@nats-io/transport-node"; await connect({ servers: ${JSON.stringify(cluster.nats.url)} }); setInterval(() => {}, 1000); console.log("ref ready");`,
    ]);
    await idleRef.waitLine(/ref ready/);
    log("cli: idle footprint (5 s idle)");
    await sleep(5_000);
    const supRss = rssOf(cluster.supervisor.pid)!;
    const agentRss = Math.max(rssOf(cluster.agents.get("node-1")!.pid)!, rssOf(cluster.agents.get("node-2")!.pid)!);
    const refRss = rssOf(idleRef.pid)!;
    await idleRef.stop();
    add({ group: "idle", name: "idle agent RSS", unit: "MB", muster: agentRss, raw: refRss, rawName: "idle node+nats.js", target: "<= 80 MB", pass: agentRss <= 80e6 });
    add({ group: "idle", name: "idle supervisor RSS", unit: "MB", muster: supRss, raw: refRss, rawName: "idle node+nats.js", target: "<= 120 MB", pass: supRss <= 120e6 });

    // References: node startup, a raw request/reply from a fresh process, an in-process round trip.
    const nc = await connect({ servers: cluster.nats.url, name: "bench-echo" });
    const echo = benchSubject(RUN_ID, "cli", "echo");
    nc.subscribe(echo, { callback: (_e, m) => void m.respond(m.data) });
    await nc.flush();
    const rtts: number[] = [];
    for (let i = 0; i < 300; i++) {
      const t0 = now();
      await nc.request(echo, enc.encode("ping"), { timeout: 5000 });
      if (i >= 50) rtts.push(now() - t0);
    }
    const runs = SIZE.cliRuns;
    const nodeStart: number[] = [];
    const rawReq: number[] = [];
    const rawScript = `import { connect } from "@nats-io/transport-node"; const nc = await connect({ servers: ${JSON.stringify(cluster.nats.url)} }); await nc.request(${JSON.stringify(echo)}, "x", { timeout: 5000 }); await nc.close();`;
    for (let i = 0; i <= runs; i++) {
      const a = await timeProcess(["-e", "0"]);
      const b = await timeProcess(["--input-type=module", "-e", rawScript]);
      if (b.code !== 0) throw new Error(`raw request process failed: ${b.out}`);
      if (i > 0) {
        nodeStart.push(a.ms);
        rawReq.push(b.ms);
      }
    }
    const cli = async (args: string[]) => {
      const times: number[] = [];
      for (let i = 0; i <= runs; i++) {
        const t0 = now();
        const r = await cluster.muster(args, { timeoutMs: 60_000 });
        const ms = now() - t0;
        if (r.code !== 0) throw new Error(`muster ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
        if (i > 0) times.push(ms); // the first run warms the page cache
      }
      return times;
    };
    log(`cli: --help, run -n 1, run -n 256 (median of ${runs} after one warm-up each)`);
    const help = await cli(["--help"]);
    const run1 = await cli(["run", "-n", "1", "--", "true"]);
    const run256 = await cli(["run", "-n", "256", "--", "true"]);
    details.cli = { runs, helpMs: help, run1Ms: run1, run256Ms: run256, nodeStartMs: nodeStart, rawRequestProcessMs: rawReq, inProcessRttMs: summarize(rtts) };
    add({ group: "cli", name: "muster --help", unit: "ms", muster: median(help), raw: median(nodeStart), rawName: "node -e 0", target: "<= 150 ms", pass: median(help) <= 150 });
    add({ group: "cli", name: "muster run -n 1 -- true", unit: "ms", muster: median(run1), raw: median(rawReq), rawName: "node+connect+request", target: "<= 400 ms", pass: median(run1) <= 400 });
    add({ group: "cli", name: "muster run -n 256 -- true (2 agents)", unit: "ms", muster: median(run256), raw: median(rawReq), rawName: "node+connect+request", target: "<= 3 s", pass: median(run256) <= 3000 });
    add({ group: "cli", name: "request/reply round trip (in process)", unit: "ms", muster: quantile(rtts, 0.5) });
    if (PROFILE_DIR) {
      for (const [name, args] of [
        ["cli-help", ["--help"]],
        ["cli-run1", ["run", "-n", "1", "--", "true"]],
      ] as const) {
        await timeProcess(["--cpu-prof", "--cpu-prof-dir", PROFILE_DIR, "--cpu-prof-name", `${name}-${RUN_ID}.cpuprofile`, MUSTER_BIN, ...args], cluster.env);
      }
    }
    await nc.close();
  } finally {
    await cluster.stop();
  }
}

// ---------------------------------------------------------------------------------------------

/** Runs a group, noting the machine's load average around it: other work on the machine skews every figure. */
async function group(name: string, fn: () => Promise<void>): Promise<void> {
  const before = load1();
  if (before > cpus().length) log(`warning: load average ${before.toFixed(1)} on ${cpus().length} cpus: other processes compete with the benchmark`);
  const t0 = Date.now();
  try {
    await fn();
  } catch (err) {
    // One group failing must not hide the others' figures.
    log(`${name} failed: ${(err as Error).stack ?? String(err)}`);
    for (const inst of installs) {
      for (const p of [inst.sup, inst.lg]) if (p) log(`--- last output of ${p.name}:\n${p.output().split("\n").slice(-25).join("\n")}`);
      await inst.stop().catch(() => undefined);
    }
    failures.push(`${name}: ${(err as Error).message.split("\n")[0]}`);
  }
  const loads = (details.load ??= {}) as Record<string, unknown>;
  loads[name] = { before: Math.round(before * 100) / 100, after: Math.round(load1() * 100) / 100, seconds: Math.round((Date.now() - t0) / 1000) };
}

async function main(): Promise<void> {
  // Every scenario is bounded in count; this bounds the whole run in time.
  const watchdog = setTimeout(() => {
    process.stderr.write("bench: gave up after the time bound\n");
    process.exit(2);
  }, (QUICK ? 6 : 15) * 60_000);
  watchdog.unref();
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    node: process.version,
    natsServer: "",
  };
  const nats = await startNatsServer();
  try {
    const v = await new Promise<string>((res) => {
      const p = spawn(process.env.NATS_SERVER_BIN ?? "nats-server", ["--version"]);
      let out = "";
      p.stdout.on("data", (d: Buffer) => (out += d.toString()));
      p.once("close", () => res(out.trim()));
      p.once("error", () => res("unknown"));
    });
    machine.natsServer = v;
    log(`nats-server ${nats.url} (${v}); ${machine.cpus} cpus; node ${machine.node}; ${QUICK ? "quick" : "full"} run`);
    if (GROUPS.has("latency")) await group("latency", () => latencyGroup(nats));
    if (GROUPS.has("throughput")) await group("throughput", () => throughputGroup(nats));
    if (GROUPS.has("step")) await group("step", () => stepGroup(nats));
  } finally {
    await nats.cleanup();
  }
  if (GROUPS.has("cli")) await group("cli", () => cliGroup());
  if (GROUPS.has("failures")) await group("failures", async () => (await failuresGroup(QUICK ? 3 : 5, log)).forEach(add));
  if (GROUPS.has("real"))
    await group("real", async () => {
      const real = await realPathGroup(REAL_PATH_SIZES[QUICK ? "quick" : "full"], log);
      real.rows.forEach(add);
      details.real = real.details;
    });
  printTable();
  const totalS = (Date.now() - started) / 1000;
  process.stdout.write(`bench took ${totalS.toFixed(0)} s (${QUICK ? "--quick" : "full"})${PROFILE_DIR ? `; CPU profiles in ${PROFILE_DIR}` : ""}\n`);
  if (opts.json) {
    writeFileSync(
      opts.json,
      `${JSON.stringify({ machine, quick: QUICK, date: new Date(started).toISOString(), seconds: Math.round(totalS), rows: rows.map((r) => ({ ...r, ratio: r.raw ? r.muster / r.raw : undefined })), details }, null, 2)}\n`,
    );
    log(`figures written to ${opts.json}`);
  }
}

main().then(
  () => process.exit(failures.length ? 1 : 0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);

/**
 * `muster inspect`: a local web page for debugging jobs with their state charts. One node:http
 * server serves the page (scripts and styles inline, nothing fetched from elsewhere) and JSON and
 * SSE endpoints; the data comes from the supervisor (`query`) and from JetStream (the JOBS and
 * EVENTS streams), and a scrubber replays a job's recorded events through the machines.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { DeliverPolicy, type ConsumerMessages } from "@nats-io/jetstream";
import { CHART_MACHINES, chartModel, chartTargetOfJob, isChartMachineName, renderSvg, type ChartModel } from "../../src/charts/index.js";
import { Client } from "../../src/cli/client.js";
import { summaryLines } from "../../src/cli/render.js";
import type { Config } from "../../src/config.js";
import { MusterError, toFailure } from "../../src/errors.js";
import type { Logger } from "../../src/logger.js";
import { jetStreamMissing, noJetStreamError } from "../../src/nats/connect.js";
import { isToken, withIdSets, type JobView, type NodeView, type StepExitCodesMessage } from "../../src/protocol/index.js";
import { JobRecordReader, parseJobMessage, parseTaskEvent, type JobRecord, type RecordedTaskEvent } from "./history.js";
import { JobMirrors } from "./mirror.js";
import { pageHtml, PAGE_SCRIPT } from "./page.js";
import { JobReplay } from "./replay.js";
import { openSse, type SseClient } from "./sse.js";
import { createStatelyBridge, type StatelyBridge } from "./stately-bridge.js";

/** The port `muster inspect` listens on unless told otherwise. */
export const DEFAULT_INSPECTOR_PORT = 8422;

/** Options of an inspector. */
export interface InspectorOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** TCP port; 0 picks a free one (default 8422). */
  readonly port?: number;
  /** Address to listen on (default 127.0.0.1: the page shows every job the user may see). */
  readonly host?: string;
  /** Serve XState inspection events for Stately's inspector on `/stately` (default off). */
  readonly stately?: boolean;
}

/** A running inspector. */
export interface Inspector {
  /** Connects, starts following the streams and listens; resolves with the page's URL. */
  start(): Promise<string>;
  stop(): Promise<void>;
}

/** A job in the list. */
export interface JobSummary {
  readonly jobId: string;
  readonly name: string;
  readonly user: string;
  readonly state: string;
  readonly reason: string;
  readonly exitCode: string;
  readonly ntasks: number;
  readonly submittedAt: number;
  readonly endedAt?: number;
  /** Time of the state shown, to order it against live messages. */
  readonly at: number;
}

const TIMELINE_PAGE = 200;

/** Builds an inspector. */
export function createInspector(opts: InspectorOptions): Inspector {
  return new InspectorService(opts);
}

/** A view whose steps all carry their picture as id sets, the form the page draws (the supervisor packs a huge step's). */
function withIdSetSteps(view: JobView): JobView {
  return { ...view, steps: view.steps.map((s) => withIdSets(s)) };
}

function summaryOf(v: JobView): JobSummary {
  return {
    jobId: v.jobId,
    name: v.name,
    user: v.user,
    state: v.state,
    reason: v.reason,
    exitCode: v.exitCode,
    ntasks: v.ntasks,
    submittedAt: v.submittedAt,
    endedAt: v.endedAt,
    at: v.endedAt ?? v.startedAt ?? v.submittedAt,
  };
}

class InspectorService implements Inspector {
  private readonly log: Logger;
  private client!: Client;
  private server: Server | undefined;
  private readonly sse = new Set<SseClient>();
  private readonly consumers: ConsumerMessages[] = [];
  /** Per job (most recent last): its record, read incrementally, and its replay with the key it was built for. */
  private readonly jobs = new Map<string, { reader: JobRecordReader; replay?: JobReplay; key?: string }>();
  /** Jobs whose full view is larger than a `query job` reply can be. */
  private readonly tooLarge = new Set<string>();
  private readonly charts = new Map<string, ChartModel>();
  private readonly bridge: StatelyBridge | undefined;
  private readonly mirrors: JobMirrors | undefined;
  /** Jobs whose mirror is being built, with the task events that arrived meanwhile. */
  private readonly mirroring = new Map<string, RecordedTaskEvent[]>();
  private readonly page: string;
  private readonly csp: string;
  private stopped = false;

  constructor(private readonly opts: InspectorOptions) {
    this.log = opts.logger.child({ component: "inspector" });
    if (opts.stately) {
      this.bridge = createStatelyBridge();
      this.mirrors = new JobMirrors({ inspect: this.bridge.inspect });
    }
    this.page = pageHtml({ prefix: opts.config.prefix, user: opts.config.user, stately: Boolean(opts.stately) });
    const scriptHash = createHash("sha256").update(PAGE_SCRIPT).digest("base64");
    // Nothing on the page may load from or talk to anything but this server.
    this.csp = `default-src 'none'; script-src 'sha256-${scriptHash}'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;
  }

  async start(): Promise<string> {
    this.client = await Client.open(this.opts.config, "muster-inspector");
    const noJetStream = await jetStreamMissing(this.client.nc);
    if (noJetStream) {
      await this.client.close();
      throw noJetStreamError(this.opts.config, noJetStream);
    }
    try {
      await this.followJobs();
    } catch (err) {
      await this.client.close();
      if (!/stream not found/i.test((err as Error).message)) throw err;
      const stream = this.client.subjects.streams.jobs.name;
      throw new MusterError("UNAVAILABLE", `no ${stream} stream under prefix ${this.opts.config.prefix}: start a supervisor first (muster up, or muster supervisor)`, undefined, { cause: err });
    }
    if (this.mirrors) {
      await this.followEventsForMirrors();
      // Jobs already running are mirrored from what was recorded of them; new ones as they appear.
      const live = await this.query<JobView[]>("jobs").catch(() => [] as JobView[]);
      for (const v of live) void this.mirror(v.jobId);
    }
    const server = createServer((req, res) => void this.handle(req, res));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.opts.port ?? DEFAULT_INSPECTOR_PORT, this.opts.host ?? "127.0.0.1", () => resolve());
    });
    const addr = server.address() as AddressInfo;
    const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
    const url = `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${addr.port}/`;
    this.log.info({ url, stately: Boolean(this.opts.stately) }, "inspector.started");
    return url;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const c of this.sse) c.close();
    for (const c of this.consumers) await c.close().catch(() => undefined);
    this.mirrors?.stop();
    if (this.server) {
      this.server.closeAllConnections();
      await new Promise<void>((r) => this.server!.close(() => r()));
    }
    await this.client?.close();
    this.log.info("inspector.stopped");
  }

  // ---- NATS ----------------------------------------------------------------------------------

  /** Follows the JOBS stream from now and forwards every state change and notification to the page. */
  private async followJobs(): Promise<void> {
    const s = this.client.subjects;
    const consumer = await this.client.js.consumers.get(s.streams.jobs.name, { filter_subjects: s.job.all, deliver_policy: DeliverPolicy.New });
    const messages = await consumer.consume();
    this.consumers.push(messages);
    void (async () => {
      for await (const m of messages) {
        const message = parseJobMessage(m);
        if (!message) continue;
        for (const c of this.sse) c.send("job", { seq: m.seq, message });
        if (this.mirrors && !this.mirrors.has(message.job)) void this.mirror(message.job);
      }
    })();
  }

  /** With `--stately`: follows every task event and feeds the job mirrors. */
  private async followEventsForMirrors(): Promise<void> {
    const s = this.client.subjects;
    const consumer = await this.client.js.consumers.get(s.streams.events.name, { filter_subjects: s.evt.all, deliver_policy: DeliverPolicy.New });
    const messages = await consumer.consume();
    this.consumers.push(messages);
    void (async () => {
      for await (const m of messages) {
        const event = parseTaskEvent(m);
        if (!event) continue;
        // Events that arrive while a job's record is being read are applied once its mirror exists.
        const waiting = this.mirroring.get(event.job);
        if (waiting) waiting.push({ seq: m.seq, event });
        else this.mirrors!.event({ seq: m.seq, event });
      }
    })();
  }

  private async mirror(job: string): Promise<void> {
    if (this.mirroring.has(job)) return;
    const waiting: RecordedTaskEvent[] = [];
    this.mirroring.set(job, waiting);
    try {
      const [view, record, epochs] = await Promise.all([this.jobView(job), this.recordOf(job).refresh(), this.nodeEpochs()]);
      this.mirrors!.add(view, record.events, epochs);
      for (const e of waiting) this.mirrors!.event(e);
    } catch (err) {
      this.log.warn({ job, err: (err as Error).message }, "inspector.mirror_failed");
    } finally {
      this.mirroring.delete(job);
    }
  }

  private async query<T>(what: "job" | "jobs" | "history" | "nodes", job?: string): Promise<T> {
    return (await this.client.request("query", { type: "query", v: 1, what, job })) as T;
  }

  /**
   * A job's view with its tasks; when the supervisor cannot send that (a reply over NATS's 1 MiB
   * for a step of about 10,000 tasks), the view without tasks from the job lists.
   */
  private async jobView(job: string): Promise<JobView> {
    let failure: unknown;
    if (!this.tooLarge.has(job)) {
      try {
        return withIdSetSteps(await this.query<JobView>("job", job));
      } catch (err) {
        const f = toFailure(err);
        if (f.code !== "INTERNAL" && f.code !== "PAYLOAD_TOO_LARGE") throw err;
        this.log.debug({ job, reason: f.message }, "inspector.view_without_tasks");
        failure = err;
      }
    }
    const [live, done] = await Promise.all([this.query<JobView[]>("jobs"), this.query<JobView[]>("history")]);
    const found = [...live, ...done].find((v) => v.jobId === job);
    if (!found) throw failure ?? new MusterError("UNKNOWN_JOB", `no job ${job}`);
    // Ask for this job's full view no more: the supervisor would build it only to fail again.
    this.tooLarge.add(job);
    return withIdSetSteps(found);
  }

  private async nodeEpochs(): Promise<Record<string, string>> {
    const nodes = await this.query<NodeView[]>("nodes").catch(() => [] as NodeView[]);
    return Object.fromEntries(nodes.filter((n) => n.epoch).map((n) => [n.node, n.epoch!]));
  }

  private async jobList(): Promise<JobSummary[]> {
    const [live, done] = await Promise.all([this.query<JobView[]>("jobs"), this.query<JobView[]>("history")]);
    return [...live, ...done].map(summaryOf).sort((a, b) => b.submittedAt - a.submittedAt || b.jobId.localeCompare(a.jobId, "en", { numeric: true }));
  }

  /** The incremental reader of a job's record (the 20 most recently used jobs are kept). */
  private recordOf(job: string): JobRecordReader {
    let entry = this.jobs.get(job);
    if (entry) this.jobs.delete(job);
    else entry = { reader: new JobRecordReader(this.client.js, this.client.subjects, job) };
    this.jobs.set(job, entry);
    while (this.jobs.size > 20) this.jobs.delete(this.jobs.keys().next().value!);
    return entry.reader;
  }

  /** The replay of a job, rebuilt only when its view or its recorded events changed. */
  private async replayOf(job: string): Promise<{ replay: JobReplay; record: JobRecord }> {
    const reader = this.recordOf(job);
    const entry = this.jobs.get(job)!;
    const t0 = Date.now();
    const [view, record] = await Promise.all([this.jobView(job), reader.refresh()]);
    this.log.debug({ job, ms: Date.now() - t0, events: record.events.length, state: view.state }, "inspector.record_read");
    const key = `${view.state}|${record.events.length}|${view.steps.map((s) => `${s.stepId}:${s.launchedAt ?? ""}:${Object.keys(s.nodes).join(",")}`).join(";")}`;
    if (!entry.replay || entry.key !== key) {
      entry.replay = new JobReplay(view, record.events, { nodeEpochs: await this.nodeEpochs() });
      entry.key = key;
    }
    return { replay: entry.replay, record };
  }

  // ---- HTTP ----------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://inspector.invalid");
    try {
      if (req.method !== "GET" && req.method !== "HEAD") throw new MusterError("BAD_REQUEST", `${req.method} is not supported: the inspector only reads`);
      const path = url.pathname;
      if (path === "/") return this.send(res, 200, "text/html; charset=utf-8", this.page, { "Content-Security-Policy": this.csp });
      if (path === "/healthz") return this.json(res, { ok: true });
      if (path === "/events") return await this.events(req, res, url.searchParams.get("job"));
      if (path === "/stately") return await this.stately(req, res, url.searchParams.get("job"));
      if (path === "/api/jobs") return this.json(res, { jobs: await this.jobList() });
      if (path === "/api/nodes") return this.json(res, { nodes: await this.query<NodeView[]>("nodes") });
      const chart = /^\/api\/charts\/([a-z]+)\.svg$/.exec(path);
      if (chart) return this.chart(res, chart[1]!, url.searchParams.get("active"));
      const m = /^\/api\/jobs\/([^/]+)(?:\/(timeline|replay))?$/.exec(path);
      if (m) {
        const job = decodeURIComponent(m[1]!);
        if (!isToken(job)) throw new MusterError("BAD_REQUEST", `not a job id: ${JSON.stringify(job)}`);
        if (m[2] === "timeline") return this.json(res, await this.timeline(job, url.searchParams));
        if (m[2] === "replay") return this.json(res, await this.replay(job, url.searchParams));
        return this.json(res, await this.jobDetail(job));
      }
      throw new MusterError("BAD_REQUEST", `nothing at ${path}`, { status: 404 });
    } catch (err) {
      const f = toFailure(err);
      const status =
        f.details?.status === 404 || f.code === "UNKNOWN_JOB" || f.code === "UNKNOWN_STEP"
          ? 404
          : f.code === "BAD_REQUEST" || f.code === "USAGE"
            ? 400
            : f.code === "FORBIDDEN"
              ? 403
              : f.code === "UNAVAILABLE"
                ? 503
                : f.code === "TIMEOUT"
                  ? 504
                  : 500;
      if (status === 500) this.log.error({ err, path: url.pathname }, "inspector.request_failed");
      if (!res.headersSent) this.json(res, { error: { code: f.code, message: f.message } }, status);
      else res.end();
    }
  }

  private send(res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
    res.writeHead(status, { "Content-Type": type, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", ...headers });
    res.end(body);
  }

  private json(res: ServerResponse, data: unknown, status = 200): void {
    this.send(res, status, "application/json; charset=utf-8", JSON.stringify(data));
  }

  private chart(res: ServerResponse, name: string, active: string | null): void {
    if (!isChartMachineName(name)) throw new MusterError("BAD_REQUEST", `no machine "${name}" (job, step, task, node)`);
    let model = this.charts.get(name);
    if (!model) this.charts.set(name, (model = chartModel(CHART_MACHINES[name])));
    const ids = (active ?? "").split(",").filter(Boolean);
    this.send(res, 200, "image/svg+xml; charset=utf-8", renderSvg(model, { active: ids }));
  }

  private async jobDetail(job: string): Promise<unknown> {
    // The notifications only: a job's task events are read when its timeline or replay is asked for.
    const [view, record] = await Promise.all([this.jobView(job), this.recordOf(job).refresh({ events: false })]);
    const notices = record.published
      .filter((p): p is { seq: number; message: StepExitCodesMessage } => p.message.type === "step.first_failure" || p.message.type === "step.summary")
      .map((p) => ({ seq: p.seq, message: p.message, lines: summaryLines(p.message) }));
    // The states to light in the job's and each step's chart, named by the charts module.
    const charts = {
      job: chartTargetOfJob(view).active,
      steps: Object.fromEntries(view.steps.map((s) => [s.stepId, chartTargetOfJob(view, { step: s.stepId }).active])),
    };
    return { view, charts, notices };
  }

  private async timeline(job: string, q: URLSearchParams): Promise<unknown> {
    const { replay, record } = await this.replayOf(job);
    const total = replay.total;
    if (q.has("rank")) {
      // One task's inputs (its step's launch and its own events).
      const rank = Number(q.get("rank"));
      const step = q.get("step") ?? replay.view.steps[0]?.stepId;
      const inputs = replay.inputs.filter((i) => i.kind !== "submit" && i.step === step && (i.kind === "launch" || i.rank === rank));
      return { total, from: 0, inputs: inputs.slice(0, 2000), published: [], unreadable: record.unreadable };
    }
    const around = q.has("around") ? Number(q.get("around")) : undefined;
    const limit = Math.min(2000, Math.max(1, Number(q.get("limit") ?? TIMELINE_PAGE) || TIMELINE_PAGE));
    let from = Number(q.get("from") ?? 0) || 0;
    if (around !== undefined && Number.isFinite(around)) from = Math.max(0, Math.min(total - limit, Math.trunc(around - limit / 2)));
    from = Math.max(0, Math.min(from, Math.max(0, total - 1)));
    return { total, from, inputs: replay.inputs.slice(from, from + limit), published: record.published, unreadable: record.unreadable };
  }

  private async replay(job: string, q: URLSearchParams): Promise<unknown> {
    const { replay } = await this.replayOf(job);
    const at = q.has("at") ? Number(q.get("at")) : replay.total - 1;
    const rank = q.has("rank") ? Number(q.get("rank")) : undefined;
    if (rank !== undefined && (!Number.isInteger(rank) || rank < 0)) throw new MusterError("BAD_REQUEST", `not a rank: ${q.get("rank")}`);
    return replay.stateAt(at, { rank, stepId: q.get("step") ?? undefined });
  }

  private async events(req: IncomingMessage, res: ServerResponse, job: string | null): Promise<void> {
    if (job !== null && !isToken(job)) throw new MusterError("BAD_REQUEST", `not a job id: ${JSON.stringify(job)}`);
    const client = openSse(req, res);
    this.sse.add(client);
    void client.closed.then(() => this.sse.delete(client));
    let follower: ConsumerMessages | undefined;
    if (job) {
      // The job's task events as they are recorded, for its timeline and grid.
      const s = this.client.subjects;
      const consumer = await this.client.js.consumers.get(s.streams.events.name, { filter_subjects: s.evt.ofJob(job), deliver_policy: DeliverPolicy.New });
      follower = await consumer.consume();
      void client.closed.then(() => follower!.close().catch(() => undefined));
      void (async () => {
        for await (const m of follower!) {
          const event = parseTaskEvent(m);
          if (event && !client.send("task", { seq: m.seq, event })) break;
        }
      })();
    }
    try {
      client.send("jobs", { jobs: await this.jobList() });
    } catch (err) {
      client.send("problem", toFailure(err));
    }
  }

  /** Stately inspection events as SSE; `?job=ID` first mirrors that job (replaying what was recorded of it). */
  private async stately(req: IncomingMessage, res: ServerResponse, job: string | null): Promise<void> {
    if (!this.bridge) throw new MusterError("BAD_REQUEST", "the Stately bridge is off: start the inspector with --stately", { status: 404 });
    if (job !== null) {
      if (!isToken(job)) throw new MusterError("BAD_REQUEST", `not a job id: ${JSON.stringify(job)}`);
      if (!this.mirrors!.has(job)) await this.mirror(job);
    }
    const client = openSse(req, res);
    const unsubscribe = this.bridge.subscribe((e) => void client.send("inspect", e));
    void client.closed.then(unsubscribe);
  }
}

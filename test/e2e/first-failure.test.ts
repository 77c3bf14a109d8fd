/**
 * A failure jumps ordinary traffic (issue #16), end to end with two real agents and 1,000 real
 * processes. nats-server is frozen (SIGSTOP) while the step starts, so each agent's outbox holds a
 * backlog of `task.started` events that nobody has stored yet; rank 0 fails only once every task
 * has started. When NATS resumes, rank 0's `task.ended` must be stored before most of the queued
 * `started` events of its agent, and the supervisor must publish the notification while its
 * picture still shows tasks that have not reported their start: the failure is known before the
 * step's other 999 tasks have all reported `started`. No timing is asserted.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IdSet } from "../../src/idset/index.js";
import { createSubjects, decodeTaskPicture } from "../../src/protocol/index.js";
import { jobOf, startCluster, type Cluster } from "../support/cluster.js";
import { waitFor } from "../support/wait.js";

const NTASKS = 1000;
let c: Cluster;
let dir: string;

beforeAll(async () => {
  // A long node timeout: the agents' heartbeats stop while nats-server is frozen.
  c = await startCluster({ agents: 2, slots: NTASKS / 2, env: { MUSTER_LOG_LEVEL: "info", MUSTER_NODE_TIMEOUT: "120" } });
  dir = await mkdtemp(join(tmpdir(), "muster-first-failure-"));
}, 60_000);

afterAll(async () => {
  if (c?.nats.pid) process.kill(c.nats.pid, "SIGCONT");
  await c?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** How many `task.<what>` lines of the job an agent logged (each is logged as its event is queued). */
function logged(node: string, job: string, what: "started" | "ended", rank?: number): number {
  let n = 0;
  for (const line of c.logs(node).split("\n")) {
    if (!line.includes(`"msg":"task.${what}"`) || !line.includes(`"job":"${job}"`)) continue;
    if (rank === undefined || line.includes(`"task":${rank},`)) n++;
  }
  return n;
}

interface StoredEvent {
  readonly seq: number;
  readonly type: string;
  readonly rank: number;
  readonly node: string;
}

/** The job's task events as the EVENTS stream stored them, in stream order. */
async function storedEvents(job: string, count: number): Promise<StoredEvent[]> {
  const nc = await c.connection();
  const jsm = await jetstreamManager(nc);
  const s = createSubjects(c.prefix);
  const consumer = await jsm.jetstream().consumers.get(s.streams.events.name, { filter_subjects: s.evt.ofJob(job) });
  const out: StoredEvent[] = [];
  while (out.length < count) {
    const batch = await consumer.fetch({ max_messages: 500, expires: 5_000 });
    let got = 0;
    for await (const m of batch) {
      const e = m.json<{ type: string; rank: number; node: string }>();
      out.push({ seq: m.seq, type: e.type, rank: e.rank, node: e.node });
      got++;
    }
    if (got === 0) break;
  }
  return out;
}

describe("the first failure jumps ordinary traffic", () => {
  it("is stored and notified before the step's other tasks have all reported started", async () => {
    const script = 'if [ "$MUSTER_TASK_ID" = 0 ]; then while [ ! -e "$D/go" ]; do sleep 0.05; done; exit 3; fi; exit 0';
    const subjects = createSubjects(c.prefix);
    const nc = await c.connection();
    const notifications: { type: string; job: string; trigger: { rank: number }; [k: string]: unknown }[] = [];
    nc.subscribe(subjects.job.exitCodesAll, { callback: (_e, m) => void notifications.push(m.json()) });
    await nc.flush();

    const run = c.start(["run", "-v", "-N", "2", "-n", String(NTASKS), "--", "sh", "-c", script], { env: { D: dir } });
    const job = await jobOf(run);
    // Both launches arrived: each agent is starting its half.
    await waitFor(() => logged("node-1", job, "started", 0) === 1 && logged("node-2", job, "started") > 0, { timeoutMs: 60_000, message: "both agents starting" });
    const natsPid = c.nats.pid!;
    process.kill(natsPid, "SIGSTOP");
    try {
      // Every task starts while nothing can be stored: the agents queue their `started` events.
      await waitFor(() => logged("node-1", job, "started") + logged("node-2", job, "started") === NTASKS, {
        timeoutMs: 120_000,
        intervalMs: 100,
        message: `${NTASKS} tasks started`,
      });
      // Only now does rank 0 fail: its `task.ended` is queued behind every `started` of its agent.
      await writeFile(join(dir, "go"), "");
      await waitFor(() => logged("node-1", job, "ended", 0) === 1, { timeoutMs: 30_000, message: "rank 0 ended" });
    } finally {
      process.kill(natsPid, "SIGCONT");
    }
    const r = await run.done;
    expect(r.code, r.stderr).toBe(3);

    // The agent published the failure ahead of the `started` events it had queued before it.
    const events = await storedEvents(job, 2 * NTASKS);
    expect(events).toHaveLength(2 * NTASKS);
    const failure = events.find((e) => e.type === "task.ended" && e.rank === 0)!;
    const ownStarted = events.find((e) => e.type === "task.started" && e.rank === 0)!;
    expect(ownStarted.seq).toBeLessThan(failure.seq); // per-task order holds
    const startedAfter = events.filter((e) => e.type === "task.started" && e.node === "node-1" && e.seq > failure.seq);
    expect(startedAfter.length).toBeGreaterThan(0);

    // The supervisor decided on it before it had taken every `started`: the notification's
    // picture still shows tasks that have not reported their start.
    await waitFor(() => notifications.some((n) => n.job === job && n.type === "step.first_failure"), { message: "first-failure notification" });
    const first = notifications.find((n) => n.job === job && n.type === "step.first_failure")!;
    expect(first.trigger.rank).toBe(0);
    const groups = decodeTaskPicture(first as never).groups;
    let notStarted = 0;
    for (const [key, ids] of Object.entries(groups)) if (key === "pending" || key === "launching") notStarted += IdSet.parse(ids).size;
    expect(notStarted).toBeGreaterThan(0);
    expect(notStarted).toBeLessThan(NTASKS);
  }, 300_000);
});

/**
 * Liveness that tells a partition from a death, end to end with real processes: an agent whose NATS
 * link is paused (a TCP proxy the test controls) is lost and comes back by itself once the link
 * heals; a wall-clock step in the supervisor or in an agent (a preload that moves `Date`) changes no
 * verdict; an agent SIGKILLed and restarted under the same name ends its old epoch's tasks at once;
 * a second agent under a live node's name is refused; a JetStream-only outage (the account's store
 * made full by shrinking its limit with a configuration reload, while core NATS keeps serving) loses
 * no node and no exit code.
 * Each test wrecks something, so each has its own cluster.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { setTimeout as delay } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { jobOf, startCluster, type Cluster, type ClusterOptions } from "../support/cluster.js";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.js";
import { waitFor } from "../support/wait.js";

const CLOCK_STEP = `--import=${pathToFileURL(resolve(import.meta.dirname, "../support/clock-step.mjs")).href}`;

let c: Cluster | undefined;
let proxy: TcpProxy | undefined;
const dirs: string[] = [];

afterEach(async () => {
  proxy?.resume();
  await c?.stop();
  await proxy?.close();
  c = undefined;
  proxy = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fresh directory for the files that release the tasks, removed after the test. */
function gateDir(): string {
  const d = mkdtempSync(join(tmpdir(), "muster-liveness-"));
  dirs.push(d);
  return d;
}

async function cluster(opts: ClusterOptions): Promise<Cluster> {
  c = await startCluster(opts);
  return c;
}

async function node(cl: Cluster, name: string): Promise<any> {
  return (await cl.nodes()).find((n) => n.node === name);
}

async function job(cl: Cluster, id: string): Promise<any> {
  return cl.ctl("query", { type: "query", v: 1, what: "job", job: id });
}

/** Waits until the job's step 0 has `n` running tasks; returns them. */
async function running(cl: Cluster, id: string, n: number): Promise<any[]> {
  return waitFor(
    async () => {
      const ts = (await job(cl, id)).steps[0]?.tasks as any[] | undefined;
      return ts && ts.length === n && ts.every((t) => t.state === "running" && t.pid) ? ts : undefined;
    },
    { timeoutMs: 20_000, message: `${n} tasks of ${id} running` },
  );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The lines of a process log whose `msg` is one of `msgs`. */
function logged(cl: Cluster, name: string, ...msgs: string[]): string[] {
  return cl
    .logs(name)
    .split("\n")
    .filter((l) => msgs.some((m) => l.includes(`"msg":"${m}"`)));
}

describe("a live agent whose NATS link is paused for 15 s", () => {
  it("is lost, fenced once the link heals, back online by itself within 10 s with a new epoch, and runs the next job", async () => {
    const cl = await cluster({ agents: 0, slots: 2 });
    proxy = await startTcpProxy(cl.nats.url);
    await cl.startAgent("node-1", { env: { NATS_URL: proxy.url } });
    await cl.waitNodes(1);
    const before = await node(cl, "node-1");
    const run = cl.start(["run", "-v", "-n", "1", "--", "sleep", "600"]);
    const id = await jobOf(run);
    const [task] = await running(cl, id, 1);

    proxy.pause();
    const pausedAt = Date.now();
    await waitFor(async () => (await node(cl, "node-1"))?.state === "lost", { timeoutMs: 15_000, message: "node-1 lost" });
    expect((await run.done).code).toBe(1);
    expect((await job(cl, id)).state).toBe("NODE_FAIL");
    // The partition lasts 15 s, whatever the detection took: the scenario, not a synchronisation.
    await delay(Math.max(0, 15_000 - (Date.now() - pausedAt)));
    expect(alive(task.pid), "the partitioned agent still runs its task").toBe(true);

    proxy.resume();
    const healedAt = Date.now();
    const back = await waitFor(
      async () => {
        const n = await node(cl, "node-1");
        return n?.state === "online" && n.epoch !== before.epoch ? n : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 100, message: `node-1 back online with a new epoch:\n${logged(cl, "supervisor", "node.fence", "node.state").join("\n")}` },
    );
    console.log(`partition healed → node-1 online again after ${Date.now() - healedAt} ms (epoch ${before.epoch} → ${back.epoch})`);
    expect(logged(cl, "supervisor", "node.fence").length).toBeGreaterThan(0);
    expect(logged(cl, "node-1", "agent.fenced").length).toBeGreaterThan(0);
    // Fenced: the old epoch's task (already reported node_lost) is killed.
    await waitFor(() => !alive(task.pid), { timeoutMs: 5_000, message: `old task ${task.pid} killed` });
    expect((await job(cl, id)).state).toBe("NODE_FAIL");

    const next = await cl.muster(["run", "-w", "node-1", "--", "sh", "-c", "exit 0"]);
    expect(next.code, next.stderr).toBe(0);
    expect(cl.agents.get("node-1")!.exitCode).toBeNull();
  }, 90_000);
});

describe("a wall-clock step", () => {
  it("of +60 s in the supervisor, then +15 s in an agent: running jobs end with their true outcomes, no node is lost", async () => {
    const cl = await cluster({ agents: 0, slots: 2, supervisorEnv: { NODE_OPTIONS: CLOCK_STEP, MUSTER_TEST_CLOCK_STEP_MS: "60000" } });
    await cl.startAgent("node-1", { env: { NODE_OPTIONS: CLOCK_STEP, MUSTER_TEST_CLOCK_STEP_MS: "15000" } });
    await cl.startAgent("node-2");
    await cl.waitNodes(2);
    // One rank per node; both wait for a gate file, then rank 0 exits with the job's code and rank 1 with 0.
    const dir = gateDir();
    const script = (code: number, gate: string) => `while [ ! -e ${dir}/${gate} ]; do sleep 0.1; done; [ "$SLURM_PROCID" = 0 ] && exit ${code}; exit 0`;

    for (const [who, code, gate] of [["supervisor", 3, "a"], ["node-1", 5, "b"]] as const) {
      const a = cl.start(["run", "-v", "-N", "2", "-n", "2", "--", "sh", "-c", script(code, gate)]);
      const b = cl.start(["run", "-v", "-N", "2", "-n", "2", "--", "sh", "-c", script(0, gate)]);
      const [ja, jb] = [await jobOf(a), await jobOf(b)];
      await running(cl, ja, 2);
      await running(cl, jb, 2);
      const proc = who === "supervisor" ? cl.supervisor : cl.agents.get("node-1")!;
      proc.kill("SIGUSR2");
      await waitFor(() => cl.logs(who).includes("clock-step: wall clock stepped"), { message: `${who} stepped its clock` });
      // Longer than a heartbeat interval and the node timeout after the step: a verdict from the step would be drawn by now.
      await delay(4_000);
      expect((await cl.nodes()).map((n) => n.state)).toEqual(["online", "online"]);
      writeFileSync(join(dir, gate), "");
      const [ra, rb] = [await a.done, await b.done];
      expect([ra.code, rb.code], `${ra.stderr}\n${rb.stderr}`).toEqual([code, 0]);
      expect([(await job(cl, ja)).state, (await job(cl, jb)).state]).toEqual(["FAILED", "COMPLETED"]);
    }
    expect(logged(cl, "supervisor", "node.lost")).toEqual([]);
    expect(logged(cl, "node-1", "agent.reincarnated")).toEqual([]);
  }, 90_000);
});

describe("an agent SIGKILLed under a job and started again with the same name", () => {
  it("ends the job NODE_FAIL within 5 s of the new hello (nodeTimeout 60 s: only the hello can tell)", async () => {
    const cl = await cluster({ agents: 1, slots: 2, env: { MUSTER_NODE_TIMEOUT: "60" } });
    const run = cl.start(["run", "-v", "-n", "2", "--", "sleep", "600"]);
    const id = await jobOf(run);
    await running(cl, id, 2);
    const old = cl.agents.get("node-1")!;
    const gone = new Promise((r) => old.once("exit", r));
    old.kill("SIGKILL");
    await gone;
    const again = await cl.startAgent("node-1");
    const helloAt = await waitFor(() => (cl.logs("node-1").split('"msg":"agent.started"').length >= 3 ? Date.now() : undefined), {
      timeoutMs: 15_000,
      message: "the new agent started",
    });
    const ended = await waitFor(async () => ((await job(cl, id)).state === "NODE_FAIL" ? Date.now() : undefined), {
      timeoutMs: 10_000,
      intervalMs: 100,
      message: "job NODE_FAIL",
    });
    console.log(`restart under the same name: job NODE_FAIL ${ended - helloAt} ms after the new agent said hello`);
    expect(ended - helloAt).toBeLessThan(5_000);
    expect((await run.done).code).toBe(1);
    expect(again.exitCode).toBeNull();
    const ok = await cl.muster(["run", "-n", "2", "--", "true"]);
    expect(ok.code, ok.stderr).toBe(0);
  });
});

describe("a second agent started with the name of an online node", () => {
  it("exits non-zero with one line; the running agent keeps its tasks and node; ten launches on node-1 all succeed", async () => {
    const cl = await cluster({ agents: 2, slots: 2 });
    const before = await node(cl, "node-1");
    const run = cl.start(["run", "-v", "-w", "node-1", "-n", "1", "--", "sleep", "600"]);
    const id = await jobOf(run);
    const [task] = await running(cl, id, 1);

    const second = await cl.muster(["agent", "--node", "node-1"], { env: { MUSTER_LOG_LEVEL: "error" } });
    expect(second.code).not.toBe(0);
    const lines = second.stderr.trim().split("\n");
    expect(lines, second.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/node-1 is already served by a live agent \(epoch \w+, pid \d+/);

    expect(alive(task.pid)).toBe(true);
    expect((await job(cl, id)).state).toBe("RUNNING");
    const after = await node(cl, "node-1");
    expect([after.state, after.epoch]).toEqual(["online", before.epoch]);
    for (let i = 0; i < 10; i++) {
      const r = await cl.muster(["run", "-w", "node-1", "--", "true"]);
      expect(r.code, `launch ${i}: ${r.stderr}`).toBe(0);
    }
    expect((await job(cl, id)).state).toBe("RUNNING");
    run.proc.kill("SIGTERM");
    expect((await run.done).code).not.toBe(0);
  });
});

describe("JetStream full for 20 s under a running job (the account's store limit shrunk by a config reload; core NATS up)", () => {
  it("loses no node, says why in the log and in muster nodes, and the job ends with its real exit codes afterwards", async () => {
    const cl = await cluster({ agents: 2, slots: 2, nats: { reloadable: true } });
    const dir = gateDir();
    const codes = [3, 0, 7, 0];
    const script = `while [ ! -e ${dir}/go ]; do sleep 0.1; done; exit $(echo ${codes.join(" ")} | cut -d' ' -f$((SLURM_PROCID+1)))`;
    const run = cl.start(["run", "-v", "-N", "2", "-n", "4", "--", "sh", "-c", script]);
    const id = await jobOf(run);
    await running(cl, id, 4);

    await cl.nats.setStoreLimit(1024);
    const offAt = Date.now();
    await waitFor(() => logged(cl, "supervisor", "liveness.paused").length > 0, { timeoutMs: 10_000, message: "supervisor paused liveness" });
    const shown = await cl.muster(["nodes"]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stderr).toMatch(/^muster: warning: node liveness paused since .*JetStream store full/m);
    // The tasks end while JetStream is away: their events wait in the agents' outboxes.
    writeFileSync(`${dir}/go`, "");
    await delay(Math.max(0, 20_000 - (Date.now() - offAt)));
    expect((await cl.nodes()).map((n) => n.state)).toEqual(["online", "online"]);
    await cl.nats.setStoreLimit(-1);
    const r = await run.done;
    expect(r.code, r.stderr).toBe(7);
    const v = await job(cl, id);
    expect(v.state).toBe("FAILED");
    const byRank = (v.steps[0].tasks as any[]).sort((a, b) => a.rank - b.rank).map((t) => t.outcome);
    expect(byRank).toEqual(codes.map((code) => ({ kind: "exited", code })));
    expect(logged(cl, "supervisor", "node.lost")).toEqual([]);
    await waitFor(() => logged(cl, "supervisor", "liveness.resumed").length > 0, { timeoutMs: 10_000, message: "liveness resumed" });
  }, 120_000);
});

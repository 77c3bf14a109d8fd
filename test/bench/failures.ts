/**
 * The failure group of `npm run bench` (issue #4): how long muster takes to notice each kind of
 * node loss, and from `muster kill` to CANCELLED for tasks that exit on SIGTERM, each beside the
 * floor measured in the same run (the OS's own kill-to-exit time, NATS's own disconnect advisory,
 * the configured node timeout).
 */
import { spawn } from "node:child_process";
import { connect } from "@nats-io/transport-node";
import { startCluster, type Cluster } from "../support/cluster.js";
import { NATS_TEST_USERS } from "../support/nats-fixture.js";
import { median, now, sleep, startPeer, until, type BenchRow } from "./lib.js";

/** A figure of the failure group. */
export type FailureRow = BenchRow;

const LIVENESS = { MUSTER_LOG_LEVEL: "info", MUSTER_HEARTBEAT_INTERVAL: "0.5", MUSTER_NODE_TIMEOUT: "3" };
const NODE_TIMEOUT_MS = 3000;

async function nodeState(c: Cluster, node: string): Promise<string | undefined> {
  return (await c.nodes()).find((n) => n.node === node)?.state;
}

/** Kills (or freezes) node-1's agent and measures until the supervisor says it is lost. */
async function detect(c: Cluster, signal: NodeJS.Signals): Promise<number> {
  await until("node-1 online", async () => (await nodeState(c, "node-1")) === "online", 20_000);
  const agent = c.agents.get("node-1")!;
  const t0 = now();
  agent.kill(signal);
  await until("node-1 lost", async () => (await nodeState(c, "node-1")) === "lost", 20_000, 10);
  const ms = now() - t0;
  if (signal === "SIGSTOP") agent.kill("SIGCONT");
  return ms;
}

/** The OS floor: SIGTERM to a local `sleep` until Node sees it exit. */
async function rawKillToExit(): Promise<number> {
  const p = spawn("sleep", ["600"], { stdio: "ignore" });
  await new Promise((r) => p.once("spawn", r));
  const t0 = now();
  const exited = new Promise((r) => p.once("exit", r));
  p.kill("SIGTERM");
  await exited;
  return now() - t0;
}

/** NATS's own floor: a raw client process SIGKILLed until the system account hears DISCONNECT. */
async function rawDisconnectAdvisory(url: string): Promise<number> {
  const sys = await connect({ servers: url, user: NATS_TEST_USERS.sys.user, pass: NATS_TEST_USERS.sys.pass });
  try {
    const name = `raw-${Math.random().toString(36).slice(2, 8)}`;
    const sub = sys.subscribe("$SYS.ACCOUNT.*.DISCONNECT");
    const peer = startPeer(name, [
      "--input-type=module",
      "-e",
      `import { connect } from "@nats-io/transport-node"; await connect({ servers: ${JSON.stringify(url)}, user: ${JSON.stringify(NATS_TEST_USERS.app.user)}, pass: ${JSON.stringify(NATS_TEST_USERS.app.pass)}, name: ${JSON.stringify(name)} }); setInterval(() => {}, 1000); console.log("ready");`,
    ]);
    await peer.waitLine(/ready/, 10_000);
    await sys.flush();
    const t0 = now();
    peer.proc.kill("SIGKILL");
    for await (const m of sub) {
      if (new TextDecoder().decode(m.data).includes(name)) break;
    }
    return now() - t0;
  } finally {
    await sys.close();
  }
}

/** Runs the failure scenarios; `samples` kills per figure. */
export async function failuresGroup(samples: number, log: (s: string) => void): Promise<FailureRow[]> {
  const rows: FailureRow[] = [];

  log("failures: muster kill → CANCELLED (tasks exit on SIGTERM)");
  {
    const c = await startCluster({ agents: 2, slots: 4, env: { MUSTER_LOG_LEVEL: "info" } });
    try {
      const kills: number[] = [];
      const raws: number[] = [];
      for (let i = 0; i < samples; i++) {
        const { job } = (await c.ctl("submit", { type: "submit", v: 1, user: "alice", argv: ["sleep", "600"], ntasks: 2, label: false, killOnBadExit: false, cwd: "/tmp" })) as { job: string };
        await until(
          "tasks running",
          async () => ((await c.ctl("query", { type: "query", v: 1, what: "job", job })).steps[0]?.tasks ?? []).every((t: { state: string }) => t.state === "running"),
          20_000,
        );
        const t0 = now();
        await c.ctl("kill", { type: "kill", v: 1, job });
        await until("CANCELLED", async () => (await c.ctl("query", { type: "query", v: 1, what: "job", job })).state === "CANCELLED", 20_000, 5);
        kills.push(now() - t0);
        raws.push(await rawKillToExit());
      }
      rows.push({ group: "failures", name: "kill → CANCELLED (SIGTERM, 2 tasks), median", unit: "ms", muster: median(kills), raw: median(raws), rawName: "SIGTERM → exit of a local sleep" });
    } finally {
      await c.stop();
    }
  }

  log("failures: agent SIGKILLed, supervisor with system-account credentials");
  {
    const c = await startCluster({
      agents: 1,
      nats: { systemAccount: true },
      env: { ...LIVENESS, NATS_USER: "app", NATS_PASSWORD: "app", MUSTER_SYS_USER: "sys", MUSTER_SYS_PASSWORD: "sys" },
    });
    try {
      const ms = await detect(c, "SIGKILL");
      const raw = await rawDisconnectAdvisory(c.nats.url);
      rows.push({ group: "failures", name: "node lost: agent SIGKILL, $SYS advisory", unit: "ms", muster: ms, raw, rawName: "raw client SIGKILL → DISCONNECT advisory", target: "≤ 1000 ms", pass: ms <= 1000 });
    } finally {
      await c.stop();
    }
  }

  for (const [signal, what] of [
    ["SIGKILL", "agent SIGKILL, heartbeats only"],
    ["SIGSTOP", "agent SIGSTOP (hung host)"],
  ] as const) {
    log(`failures: ${what}`);
    const c = await startCluster({ agents: 1, env: LIVENESS });
    try {
      const ms = await detect(c, signal);
      rows.push({
        group: "failures",
        name: `node lost: ${what}`,
        unit: "ms",
        muster: ms,
        raw: NODE_TIMEOUT_MS,
        rawName: "configured node timeout",
        target: "≤ node timeout + 1 heartbeat",
        pass: ms <= NODE_TIMEOUT_MS + 500,
      });
      await sleep(100);
    } finally {
      await c.stop();
    }
  }
  return rows;
}

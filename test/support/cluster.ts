/**
 * An e2e cluster: a real nats-server (the fixture), a supervisor and agents as child processes of
 * the built `muster` binary, and a way to run CLI commands against them. Needs `npm run build`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { startNatsServer, uniquePrefix, type NatsServerHandle, type NatsServerOptions } from "./nats-fixture.js";
import { waitFor } from "./wait.js";

/** The built CLI entry point. */
export const MUSTER_BIN = resolve(import.meta.dirname, "../../bin/muster.js");

/** What a finished CLI command produced. */
export interface CommandResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A running CLI command. */
export interface RunningCommand {
  readonly proc: ChildProcess;
  /** Output so far. */
  stdout(): string;
  stderr(): string;
  readonly done: Promise<CommandResult>;
}

/** Options of a test cluster. */
export interface ClusterOptions {
  readonly agents?: number;
  readonly slots?: number;
  readonly nats?: NatsServerOptions;
  /** Extra environment for every process (e.g. MUSTER_NODE_TIMEOUT). */
  readonly env?: Record<string, string>;
  /** Extra environment for the supervisor only (e.g. NODE_OPTIONS with a preload). */
  readonly supervisorEnv?: Record<string, string>;
}

/** A test cluster. */
export interface Cluster {
  readonly nats: NatsServerHandle;
  readonly prefix: string;
  readonly env: Record<string, string>;
  supervisor: ChildProcess;
  readonly agents: Map<string, ChildProcess>;
  /** Starts a CLI command. */
  start(args: readonly string[], opts?: { env?: Record<string, string>; cwd?: string }): RunningCommand;
  /** Runs a CLI command to its end. */
  muster(args: readonly string[], opts?: { env?: Record<string, string>; timeoutMs?: number }): Promise<CommandResult>;
  /** `show job ID --json`, parsed. */
  showJob(job: string): Promise<any>;
  startSupervisor(): Promise<ChildProcess>;
  startAgent(node: string, opts?: { env?: Record<string, string>; wrap?: string[] }): Promise<ChildProcess>;
  /** Waits until `n` nodes are online. */
  waitNodes(n: number): Promise<void>;
  /** Every process's captured log lines. */
  logs(name: string): string;
  /**
   * A control request (`<prefix>.ctl.<user>.<op>`) sent from the test process itself, without
   * starting a CLI process (for polling at a fine grain); returns the reply's data or throws its error.
   */
  ctl(op: "submit" | "kill" | "signal" | "query", message: Record<string, unknown>, user?: string): Promise<any>;
  /** The node table (`muster nodes --json`'s content), through `ctl`. */
  nodes(): Promise<{ node: string; state: string; reason?: string; epoch?: string; since?: number; lastSeenAt?: number; runningTasks: number }[]>;
  /** The test process's own NATS connection (opened on first use, with the cluster's NATS_USER/NATS_PASSWORD). */
  connection(): Promise<NatsConnection>;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of running) p.kill("SIGKILL");
});

function spawnMuster(args: readonly string[], env: Record<string, string>, cwd?: string, wrap: string[] = []): ChildProcess {
  if (!existsSync(resolve(import.meta.dirname, "../../dist/src/cli/main.js"))) {
    throw new Error("dist/ is missing: run `npm run build` (npm test does it) before the e2e tests");
  }
  const cmd = wrap.length ? wrap[0]! : process.execPath;
  const argv = wrap.length ? [...wrap.slice(1), process.execPath, MUSTER_BIN, ...args] : [MUSTER_BIN, ...args];
  const p = spawn(cmd, argv, { env: { ...process.env, ...env }, cwd, stdio: ["ignore", "pipe", "pipe"] });
  running.add(p);
  p.once("exit", () => running.delete(p));
  return p;
}

function capture(p: ChildProcess): RunningCommand {
  let out = "";
  let err = "";
  p.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  p.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const done = new Promise<CommandResult>((res) => p.once("close", (code, signal) => res({ code, signal, stdout: out, stderr: err })));
  return { proc: p, stdout: () => out, stderr: () => err, done };
}

/** The job id `muster run -v` prints on stderr; throws when there is none. */
export function jobIdOf(stderr: string): string {
  const m = /muster: job (\S+):/.exec(stderr);
  if (!m) throw new Error(`no job id in stderr:\n${stderr}`);
  return m[1]!;
}

/** Waits for the job id a running `muster run -v` prints on stderr. */
export async function jobOf(run: RunningCommand): Promise<string> {
  return waitFor(() => /muster: job (\S+):/.exec(run.stderr())?.[1], { timeoutMs: 15_000, message: `job id in stderr of muster run: ${run.stderr()}` });
}

/** Starts nats-server, a supervisor and `agents` agents (node-1 …). */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const nats = await startNatsServer(opts.nats);
  const prefix = uniquePrefix();
  const env: Record<string, string> = {
    NATS_URL: nats.url,
    MUSTER_PREFIX: prefix,
    MUSTER_USER: "alice",
    MUSTER_LOG_LEVEL: "debug",
    MUSTER_HEARTBEAT_INTERVAL: "0.5",
    MUSTER_NODE_TIMEOUT: "3",
    ...opts.env,
  };
  const logs = new Map<string, string>();
  const keep = (name: string, p: ChildProcess) => {
    const add = (d: Buffer) => logs.set(name, (logs.get(name) ?? "") + d.toString("utf8"));
    p.stdout!.on("data", add);
    p.stderr!.on("data", add);
  };
  const agents = new Map<string, ChildProcess>();
  let ncp: Promise<NatsConnection> | undefined;
  const cluster: Cluster = {
    nats,
    prefix,
    env,
    supervisor: undefined as unknown as ChildProcess,
    agents,
    start(args, o = {}) {
      return capture(spawnMuster(args, { ...env, ...o.env }, o.cwd));
    },
    async muster(args, o = {}) {
      const r = cluster.start(args, o);
      const t = setTimeout(() => r.proc.kill("SIGKILL"), o.timeoutMs ?? 60_000);
      try {
        return await r.done;
      } finally {
        clearTimeout(t);
      }
    },
    async showJob(job) {
      const r = await cluster.muster(["show", "job", job, "--json"]);
      if (r.code !== 0) throw new Error(`show job ${job} failed (${r.code}): ${r.stderr}`);
      return JSON.parse(r.stdout);
    },
    async startSupervisor() {
      const p = spawnMuster(["supervisor"], { ...env, ...opts.supervisorEnv });
      keep("supervisor", p);
      cluster.supervisor = p;
      return p;
    },
    async startAgent(node, o = {}) {
      const p = spawnMuster(["agent", "--node", node, ...(opts.slots ? ["--slots", String(opts.slots)] : [])], { ...env, ...o.env }, undefined, o.wrap);
      keep(node, p);
      agents.set(node, p);
      return p;
    },
    async waitNodes(n) {
      await waitFor(
        async () => {
          const r = await cluster.muster(["nodes", "--json"], { timeoutMs: 10_000 });
          if (r.code !== 0) return false;
          return (JSON.parse(r.stdout) as { state: string }[]).filter((x) => x.state === "online").length >= n;
        },
        { timeoutMs: 30_000, intervalMs: 200, message: `${n} nodes online` },
      );
    },
    logs(name) {
      return logs.get(name) ?? "";
    },
    connection() {
      ncp ??= connect({ servers: nats.url, ...(env.NATS_USER ? { user: env.NATS_USER, pass: env.NATS_PASSWORD ?? "" } : {}) });
      return ncp;
    },
    async ctl(op, message, user = env.MUSTER_USER ?? "alice") {
      const nc = await cluster.connection();
      const reply = await nc.request(`${prefix}.ctl.${user}.${op}`, JSON.stringify(message), { timeout: 5000 });
      const r = reply.json<{ ok: boolean; data?: unknown; error?: { code: string; message: string } }>();
      if (!r.ok) throw new Error(`${r.error?.code}: ${r.error?.message}`);
      return r.data;
    },
    async nodes() {
      return cluster.ctl("query", { type: "query", v: 1, what: "nodes" });
    },
    async stop() {
      if (ncp) await (await ncp.catch(() => undefined))?.close().catch(() => undefined);
      const procs = [...agents.values(), cluster.supervisor].filter(Boolean);
      await Promise.all(
        procs.map(
          (p) =>
            new Promise<void>((done) => {
              if (p.exitCode !== null || p.signalCode !== null) return done();
              const t = setTimeout(() => p.kill("SIGKILL"), 10_000);
              p.once("exit", () => {
                clearTimeout(t);
                done();
              });
              p.kill("SIGCONT");
              p.kill("SIGTERM");
            }),
        ),
      );
      await nats.cleanup();
    },
  };
  await cluster.startSupervisor();
  for (let i = 1; i <= (opts.agents ?? 3); i++) await cluster.startAgent(`node-${i}`);
  try {
    await cluster.waitNodes(opts.agents ?? 3);
  } catch (err) {
    // Nobody gets the cluster to look at: say what its processes said, and do not leave them running.
    const said = ["supervisor", ...agents.keys()].map((name) => `--- ${name} (last lines) ---\n${lastLines(cluster.logs(name), 25)}`);
    await cluster.stop().catch(() => undefined);
    throw new Error([(err as Error).message, ...said].join("\n"), { cause: err });
  }
  return cluster;
}

/** The last `n` lines of a process log, debug lines left out. */
function lastLines(log: string, n: number): string {
  return log
    .split("\n")
    .filter((l) => l && !l.startsWith('{"level":20'))
    .slice(-n)
    .join("\n");
}

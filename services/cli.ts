/**
 * The service commands of the `muster` binary: `supervisor`, `agent`, `inspect` and `up` (the local,
 * embedded cluster). The CLI's `main` parses their arguments and loads their configuration, then
 * bin/muster.js imports this module and runs the services in this process (`supervisor`, `agent`,
 * `inspect`) or as child processes (`up`).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, fstatSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { createConnection } from "node:net";
import { availableParallelism } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Config } from "../src/config.js";
import { MusterError } from "../src/errors.js";
import type { ParsedArgs } from "../src/cli/args.js";
import { main as clientMain } from "../src/cli/main.js";
import { createLogger } from "../src/logger.js";
import { Client } from "../src/cli/client.js";
import { CONFIG_ENV } from "../src/config.js";
import { connectNats, jetStreamMissing, noJetStreamError } from "../src/nats/connect.js";
import { supervisorAnswers, supervisorRunningError } from "../src/nats/supervisor-presence.js";
import type { NodeView } from "../src/protocol/index.js";
// The services themselves are imported by the command that runs them: an agent loads neither the
// supervisor (its machines) nor the inspector (charts, the page), which keeps its footprint small.

const BIN = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../bin/muster.js");

/**
 * Runs a service command, its arguments parsed and its configuration loaded by the CLI's `main`
 * (which answers `--help` and reports errors); resolves with the exit status.
 */
export async function runService(name: string, args: ParsedArgs, config: Config, env: Readonly<Record<string, string | undefined>>): Promise<number> {
  switch (name) {
    case "supervisor":
      return runSupervisor(config, String(args.options.operator ?? env.MUSTER_OPERATORS ?? ""));
    case "agent": {
      const node = args.options.node;
      if (typeof node !== "string" || !/^[A-Za-z0-9_-]{1,128}$/.test(node)) throw new MusterError("USAGE", "agent: --node NAME is required ([A-Za-z0-9_-])");
      const { runAgent } = await import("./agent/main.js");
      return runAgent({ config, node, slots: args.options.slots as number | undefined });
    }
    case "inspect": {
      const { DEFAULT_INSPECTOR_PORT } = await import("./inspector/index.js");
      return runInspector(config, {
        port: (args.options.port as number | undefined) ?? DEFAULT_INSPECTOR_PORT,
        host: args.options.host as string | undefined,
        stately: Boolean(args.options.stately),
      });
    }
    case "up":
      return up(config, env, (args.options.agents as number | undefined) ?? 2, args.options.slots as number | undefined, Boolean(args.options.demo));
    default:
      throw new MusterError("USAGE", `unknown service command "${name}"`);
  }
}

async function runSupervisor(config: Config, operators: string): Promise<number> {
  const logger = createLogger({ level: config.logLevel, name: "muster" });
  const { createSupervisor } = await import("./supervisor/index.js");
  const sup = createSupervisor({ config, logger, operators: operators.split(",").map((s) => s.trim()).filter(Boolean) });
  await sup.start();
  await new Promise<void>((done) => {
    const stop = () => void sup.stop().finally(done);
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
  logger.flush();
  return 0;
}

/** `muster inspect`: serves the inspector page until SIGINT/SIGTERM; prints its URL on stdout. */
async function runInspector(config: Config, opts: { port: number; host?: string; stately: boolean }): Promise<number> {
  const logger = createLogger({ level: config.logLevel, name: "muster" });
  const { createInspector } = await import("./inspector/index.js");
  const inspector = createInspector({ config, logger, ...opts });
  const url = await inspector.start();
  process.stdout.write(`${url}\n`);
  process.stderr.write(`muster: inspector at ${url}${opts.stately ? ` (Stately events on ${url}stately)` : ""}; Ctrl-C stops it\n`);
  await new Promise<void>((done) => {
    const stop = () => void inspector.stop().finally(done);
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
  logger.flush();
  return 0;
}

/** True when something accepts TCP connections at the URL's host and port. */
function reachable(url: string, timeoutMs = 1000): Promise<boolean> {
  const u = new URL(url.split(",")[0]!.trim().replace(/^nats:/, "http:"));
  return new Promise((done) => {
    const sock = createConnection({ host: u.hostname, port: Number(u.port || 4222) });
    const t = setTimeout(() => {
      sock.destroy();
      done(false);
    }, timeoutMs);
    sock.once("connect", () => {
      clearTimeout(t);
      sock.end();
      done(true);
    });
    sock.once("error", () => {
      clearTimeout(t);
      done(false);
    });
  });
}

function findNatsServer(env: Readonly<Record<string, string | undefined>>): string | undefined {
  if (env.NATS_SERVER_BIN) return existsSync(env.NATS_SERVER_BIN) ? env.NATS_SERVER_BIN : undefined;
  for (const dir of (env.PATH ?? "").split(":").filter(Boolean)) {
    const p = join(dir, "nats-server");
    if (existsSync(p)) return p;
  }
  return existsSync("/usr/sbin/nats-server") ? "/usr/sbin/nats-server" : undefined;
}

async function waitFor(what: string, cond: () => Promise<boolean>, timeoutMs: number, failed?: () => Error | undefined): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const err = failed?.();
    if (err) throw err;
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new MusterError("TIMEOUT", `${what} did not come up within ${timeoutMs / 1000}s`);
}

/** Tasks of the `up --demo` job. */
const DEMO_TASKS = 8;

/**
 * Refuses to start a cluster beside a NATS that cannot hold one (no JetStream) or where a supervisor
 * already serves the prefix (a second supervisor and a second node-1 would take over half of the
 * first cluster's messages). Nothing has been started or written when it throws.
 */
async function checkExistingNats(config: Config): Promise<void> {
  const nc = await connectNats(config, { name: "muster-up", reconnect: false });
  try {
    const missing = await jetStreamMissing(nc);
    if (missing) throw noJetStreamError(config, missing);
    if (await supervisorAnswers(nc, config)) throw supervisorRunningError(config, "another cluster");
  } finally {
    await nc.close().catch(() => undefined);
  }
}

/** The last `muster: error:` line a service wrote to its log (from `logFrom` on: this run's part), or its exit status. */
function exitReason(name: string, proc: ChildProcess, logFile: string, logFrom = 0): Error {
  let line: string | undefined;
  try {
    line = readFileSync(logFile).subarray(logFrom).toString("utf8").split("\n").reverse().find((l) => l.startsWith("muster: error: "));
  } catch {
    // no log: the exit status says what there is to say
  }
  const how = proc.signalCode ? `killed by ${proc.signalCode}` : `exit status ${proc.exitCode}`;
  return new MusterError("UNAVAILABLE", line ? `${name}: ${line.slice("muster: error: ".length)}` : `${name} stopped (${how}); see ${logFile}`);
}

/** The connection settings the services of `up` get through their environment (flags and a nats context included). */
function connectionEnv(config: Config): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of ["natsCreds", "natsNkey", "natsUser", "natsPassword", "natsToken", "natsCert", "natsKey", "natsCa", "timeoutSeconds"] as const) {
    const v = config[key];
    if (v !== undefined) out[CONFIG_ENV[key]] = String(v);
  }
  return out;
}

/** `muster up`: the local cluster. */
async function up(config: Config, env: Readonly<Record<string, string | undefined>>, agents: number, slots: number | undefined, demo: boolean): Promise<number> {
  const dir = resolve(".muster");
  const logs = join(dir, "logs");
  const children: { name: string; proc: ChildProcess; logFrom?: number }[] = [];
  const say = (s: string) => process.stderr.write(`muster: ${s}\n`);
  let natsUrl = config.natsUrl;
  let startedNats = false;
  const existing = await reachable(natsUrl);
  if (existing) await checkExistingNats(config);
  mkdirSync(logs, { recursive: true });
  if (!existing) {
    const bin = findNatsServer(env);
    if (!bin) throw new MusterError("UNAVAILABLE", `no NATS answers at ${natsUrl} and nats-server is not installed: apt-get install -y nats-server (or set NATS_SERVER_BIN)`);
    const u = new URL(natsUrl.split(",")[0]!.trim().replace(/^nats:/, "http:"));
    const port = u.port || "4222";
    const host = u.hostname === "localhost" ? "127.0.0.1" : u.hostname;
    natsUrl = `nats://${host}:${port}`;
    const out = openSync(join(logs, "nats-server.log"), "a");
    const proc = spawn(bin, ["-a", host, "-p", port, "-js", "-sd", join(dir, "nats")], { stdio: ["ignore", out, out] });
    children.push({ name: "nats-server", proc });
    startedNats = true;
    try {
      await waitFor("nats-server", () => reachable(natsUrl, 300), 15_000);
    } catch (e) {
      // Nothing else is running yet: do not leave this server behind.
      proc.kill("SIGKILL");
      throw e;
    }
    say(`started nats-server (pid ${proc.pid}) at ${natsUrl}, store ${join(dir, "nats")}`);
  }
  const childEnv = { ...env, ...connectionEnv(config), NATS_URL: natsUrl, MUSTER_PREFIX: config.prefix };
  const start = (name: string, args: string[]) => {
    const out = openSync(join(logs, `${name}.log`), "a");
    const proc = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", out, out], env: childEnv });
    children.push({ name, proc, logFrom: fstatSync(out).size });
  };
  start("supervisor", ["supervisor"]);
  // The demo runs 8 tasks at once; a step never takes more tasks than the nodes have slots.
  if (demo && slots === undefined) slots = Math.max(availableParallelism(), Math.ceil(DEMO_TASKS / agents));
  for (let i = 1; i <= agents; i++) start(`node-${i}`, ["agent", "--node", `node-${i}`, ...(slots ? ["--slots", String(slots)] : [])]);

  let stopping: Promise<void> | undefined;
  const stopAll = () =>
    (stopping ??= (async () => {
      const order = [...children].reverse();
      // Agents first (they report their tasks), then the supervisor, then NATS if we started it.
      for (const group of [order.filter((c) => c.name.startsWith("node-")), order.filter((c) => c.name === "supervisor"), order.filter((c) => c.name === "nats-server")]) {
        await Promise.all(
          group.map(
            (c) =>
              new Promise<void>((done) => {
                if (c.proc.exitCode !== null || c.proc.signalCode !== null) return done();
                const t = setTimeout(() => c.proc.kill("SIGKILL"), 15_000);
                c.proc.once("exit", () => {
                  clearTimeout(t);
                  done();
                });
                c.proc.kill("SIGTERM");
              }),
          ),
        );
      }
    })());
  process.once("SIGINT", () => void stopAll());
  process.once("SIGTERM", () => void stopAll());

  const cfg = { ...config, natsUrl };
  try {
    await waitFor(`${agents} agents`, async () => {
      const c = await Client.open(cfg).catch(() => undefined);
      if (!c) return false;
      try {
        const nodes = (await c.request("query", { type: "query", v: 1, what: "nodes" })) as NodeView[];
        return nodes.filter((n) => n.state === "online").length >= agents;
      } catch {
        return false;
      } finally {
        await c.close();
      }
    }, 30_000, () => {
      // A service that stopped (no JetStream, a supervisor already there, a bad setting) will not come up: say why at once.
      const gone = children.find((c) => c.name !== "nats-server" && (c.proc.exitCode !== null || c.proc.signalCode !== null));
      return gone && exitReason(gone.name, gone.proc, join(logs, `${gone.name}.log`), gone.logFrom);
    });
  } catch (e) {
    await stopAll();
    throw e;
  }
  say(`local cluster up: NATS ${natsUrl} (${startedNats ? `started here, store ${join(dir, "nats")}` : "already running"}), supervisor, agents node-1..node-${agents}`);
  say(`logs in ${logs}; prefix ${config.prefix}; try: muster run -n 4 -l -- hostname`);
  if (demo) {
    say("demo: muster run -n 8 -l -- sh -c '...': rank 5 exits 3 after 1 s, the others run for 3 s");
    const script = 'if [ "$MUSTER_TASK_ID" = 5 ]; then sleep 1; echo "rank 5 failing on $MUSTER_NODE" >&2; exit 3; fi; echo "rank $MUSTER_TASK_ID on $MUSTER_NODE"; sleep 3; echo "rank $MUSTER_TASK_ID done"';
    const status = await clientMain(["run", "-n", String(DEMO_TASKS), "-l", "-v", "--", "sh", "-c", script], childEnv);
    say(`demo: muster run exited ${status} (expected 3: rank 5 exited with code 3 while the others were still running)`);
    await stopAll();
    return status === 3 ? 0 : 1;
  }
  say("Ctrl-C stops everything");
  await new Promise<void>((done) => {
    for (const c of children) c.proc.once("exit", () => void stopAll().then(done));
    process.once("SIGINT", () => void stopAll().then(done));
    process.once("SIGTERM", () => void stopAll().then(done));
  });
  await stopAll();
  return 0;
}

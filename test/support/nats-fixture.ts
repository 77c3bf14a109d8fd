// Starts a real nats-server for integration tests: a Docker container when an engine answers,
// otherwise the local binary. Every server started here is killed when the test process exits.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants as fsConstants, existsSync, rmSync, statSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createConnection, createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import type { StartedTestContainer } from "testcontainers";

/** Options for `startNatsServer`; every field has a default suited to an isolated test. */
export interface NatsServerOptions {
  /** Enable JetStream (default true). */
  jetstream?: boolean;
  /** Client port (default: a free random port). */
  port?: number;
  /** JetStream store directory (default: a fresh temporary directory removed by `cleanup`). */
  storeDir?: string;
  /** Configure a system account `SYS` (user sys/sys) and an app account `APP` (user app/app, JetStream) (default false). */
  systemAccount?: boolean;
  /** Extra command-line arguments for nats-server (keep logging on stderr: readiness watches for "Server is ready"). */
  args?: string[];
  /**
   * Start from a configuration file whose clients (no user needed: `no_auth_user`) are in an account
   * with a JetStream storage limit, so that `setStoreLimit` can shrink it below what is stored and
   * restore it with a configuration reload (SIGHUP): a real "JetStream full" outage while core NATS
   * keeps serving (binary backend, without `systemAccount`).
   */
  reloadable?: boolean;
}

/** A running (or stopped, restartable) nats-server owned by a test. */
export interface NatsServerHandle {
  /** Client URL, `nats://127.0.0.1:PORT` for the binary backend. */
  readonly url: string;
  /** Client port; it stays the same across `restart`. */
  readonly port: number;
  /** JetStream store directory (a path inside the container for the Docker backend without `storeDir`). */
  readonly storeDir: string;
  /** Process id of the current server process; undefined for the Docker backend or when stopped. */
  readonly pid: number | undefined;
  /** Which backend runs the server. */
  readonly backend: "binary" | "docker";
  /** The last ~200 lines the server printed, for diagnostics. */
  logs(): string;
  /** Stops the server gracefully (SIGTERM, SIGKILL after 5 s) and waits for it to exit. */
  stop(): Promise<void>;
  /** Kills the server with `signal` (default SIGKILL) and waits for it to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again on the same port and store directory and waits until it is ready. */
  restart(): Promise<void>;
  /** Stops the server and removes the temporary directories the fixture created. */
  cleanup(): Promise<void>;
  /** Sets the account's JetStream file-store limit in bytes (-1, the default: none) by a configuration reload (needs `reloadable`); resolves once the server reloaded. */
  setStoreLimit(bytes: number): Promise<void>;
}

const INSTALL_HINT =
  "nats-server not found: install it (apt-get install -y nats-server, or download from " +
  "https://github.com/nats-io/nats-server/releases) or set NATS_SERVER_BIN";
const DOCKER_IMAGE = "nats:2.9.10";
const READY_TIMEOUT_MS = 10_000;
const POLL_MS = 20;
const STOP_GRACE_MS = 5_000;
const LOG_LINES = 200;
const DOCKER_PROBE_MS = 900;

/** Users of the accounts written when `systemAccount` is true. */
export const NATS_TEST_USERS = {
  sys: { user: "sys", pass: "sys" },
  app: { user: "app", pass: "app" },
} as const;

/** Starts a real nats-server (Docker when reachable, else the local binary) and waits until it accepts clients and JetStream answers. */
export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const mode = process.env.MUSTER_TEST_NATS;
  if (mode === "docker") return startDocker(opts);
  if (mode !== "binary" && (await dockerReachable())) return startDocker(opts);
  return startBinary(opts, resolveBinary());
}

/** Returns a subject prefix unique to one test, such as `t_3f9a1c2b` or `t_name_3f9a1c2b` (only [a-z0-9_]). */
export function uniquePrefix(name?: string): string {
  const rand = randomBytes(4).toString("hex");
  const slug = (name ?? "").toLowerCase().replace(/[^a-z0-9_]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 32);
  return slug ? `t_${slug}_${rand}` : `t_${rand}`;
}

// ---------------------------------------------------------------------------------------------
// Binary backend

function resolveBinary(): string {
  const fromEnv = process.env.NATS_SERVER_BIN;
  if (fromEnv) {
    if (isExecutable(fromEnv)) return fromEnv;
    throw new Error(`${INSTALL_HINT} (NATS_SERVER_BIN=${fromEnv} is not an executable file)`);
  }
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && isExecutable(join(dir, "nats-server"))) return join(dir, "nats-server");
  }
  if (isExecutable("/usr/sbin/nats-server")) return "/usr/sbin/nats-server";
  throw new Error(INSTALL_HINT);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

const liveChildren = new Set<ChildProcess>();
const liveTempDirs = new Set<string>();
let exitHooksInstalled = false;

function killAllChildren(): void {
  for (const c of liveChildren) {
    try {
      c.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  for (const dir of liveTempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort: the OS cleans tmp eventually
    }
  }
}

// A test run that forgets cleanup (or is torn down) must not leave nats-server processes behind.
// Vitest stops fork workers with SIGTERM, which skips 'exit', so the usual signals are hooked too;
// the hook re-raises the signal when nobody else listens, keeping the default "terminate".
function trackChild(child: ChildProcess): void {
  liveChildren.add(child);
  child.once("exit", () => liveChildren.delete(child));
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on("exit", killAllChildren);
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    process.once(signal, () => {
      killAllChildren();
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

async function startBinary(opts: NatsServerOptions, bin: string): Promise<NatsServerHandle> {
  const jetstream = opts.jetstream ?? true;
  const ownedDirs: string[] = [];
  const storeDir = opts.storeDir ?? (await mkdtemp(join(tmpdir(), "muster-nats-")));
  if (!opts.storeDir) {
    ownedDirs.push(storeDir);
    liveTempDirs.add(storeDir);
  }
  const removeOwnedDirs = async (): Promise<void> => {
    for (const d of ownedDirs) {
      await rm(d, { recursive: true, force: true });
      liveTempDirs.delete(d);
    }
  };
  const logs = new LineRing(LOG_LINES);
  let port = opts.port ?? (await freePort());
  let child: ChildProcess | undefined;
  let confDir: string | undefined;
  let addressInUse = false;
  let saidReady = false;

  let storeLimit = -1;
  const reloadableConf = async (p: number): Promise<string> => {
    if (!confDir) {
      confDir = await mkdtemp(join(tmpdir(), "muster-nats-conf-"));
      ownedDirs.push(confDir);
      liveTempDirs.add(confDir);
    }
    const confPath = join(confDir, "nats-server.conf");
    await writeFile(
      confPath,
      [
        `listen: "127.0.0.1:${p}"`,
        `jetstream { store_dir: ${JSON.stringify(storeDir)} }`,
        `accounts { APP { jetstream { max_file: ${storeLimit}, max_mem: 268435456 }, users [ { user: app, password: app } ] } }`,
        "no_auth_user: app",
        "",
      ].join("\n"),
    );
    return confPath;
  };
  const argsFor = async (p: number): Promise<string[]> => {
    const extra = opts.args ?? [];
    if (opts.reloadable && !opts.systemAccount) return ["-c", await reloadableConf(p), ...extra];
    if (!opts.systemAccount) {
      return ["-a", "127.0.0.1", "-p", String(p), ...(jetstream ? ["-js", "-sd", storeDir] : []), ...extra];
    }
    if (!confDir) {
      confDir = await mkdtemp(join(tmpdir(), "muster-nats-conf-"));
      ownedDirs.push(confDir);
      liveTempDirs.add(confDir);
    }
    const confPath = join(confDir, "nats-server.conf");
    await writeFile(confPath, systemAccountConfig({ host: "127.0.0.1", port: p, storeDir: jetstream ? storeDir : undefined }));
    return ["-c", confPath, ...extra];
  };

  const launch = async (p: number): Promise<void> => {
    const args = await argsFor(p);
    logs.push(`--- ${bin} ${args.join(" ")}`);
    const c = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    child = c;
    addressInUse = false;
    saidReady = false;
    trackChild(c);
    const onOutput = (chunk: Buffer) => {
      for (const line of logs.write(chunk)) {
        if (/address already in use/i.test(line)) addressInUse = true;
        if (line.includes("Server is ready")) saidReady = true;
      }
    };
    c.stdout?.on("data", onOutput);
    c.stderr?.on("data", onOutput);
    // A forgotten server must not keep the test process alive; the exit hook kills it.
    c.unref();
    (c.stdout as { unref?: () => void } | null)?.unref?.();
    (c.stderr as { unref?: () => void } | null)?.unref?.();
    const exited = new Promise<string>((resolve) => {
      c.once("error", (err) => resolve(`failed to spawn: ${err.message}`));
      c.once("exit", (code, signal) => resolve(`exited early (code ${code}, signal ${signal})`));
    });
    await waitReady({
      host: "127.0.0.1",
      port: p,
      jetstream,
      systemAccount: !!opts.systemAccount,
      exited,
      listening: () => saidReady,
      logs,
    });
  };

  // A random port can be taken between probing and binding; pick another one a few times.
  for (let attempt = 1; ; attempt++) {
    try {
      await launch(port);
      break;
    } catch (err) {
      await killChild(child, "SIGKILL");
      const portRace = opts.port === undefined && addressInUse && attempt < 4;
      if (!portRace) {
        await removeOwnedDirs();
        throw err;
      }
      port = await freePort();
    }
  }

  let cleaned = false;
  const handle: NatsServerHandle = {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    get pid() {
      return isRunning(child) ? child?.pid : undefined;
    },
    backend: "binary",
    logs: () => logs.text(),
    stop: () => stopChild(child),
    kill: (signal = "SIGKILL") => killChild(child, signal),
    restart: async () => {
      if (cleaned) throw new Error("nats-server fixture: restart() after cleanup()");
      await stopChild(child);
      try {
        await launch(port);
      } catch (err) {
        await killChild(child, "SIGKILL");
        throw err;
      }
    },
    cleanup: async () => {
      cleaned = true;
      await stopChild(child);
      await removeOwnedDirs();
    },
    setStoreLimit: async (bytes) => {
      if (!opts.reloadable || opts.systemAccount) throw new Error("nats-server fixture: setStoreLimit needs { reloadable: true } without systemAccount");
      if (!isRunning(child)) throw new Error("nats-server fixture: setStoreLimit on a stopped server");
      storeLimit = bytes;
      await reloadableConf(port);
      const before = logs.text().split("Reloaded server configuration").length;
      child.kill("SIGHUP");
      const deadline = Date.now() + READY_TIMEOUT_MS;
      while (logs.text().split("Reloaded server configuration").length === before) {
        if (Date.now() > deadline) throw new Error(`nats-server did not reload:\n${logs.text()}`);
        await delay(POLL_MS);
      }
    },
  };
  return handle;
}

function isRunning(child: ChildProcess | undefined): child is ChildProcess {
  return !!child && child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

function waitExit(child: ChildProcess): Promise<void> {
  if (!isRunning(child)) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

async function killChild(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!isRunning(child)) return;
  const exited = waitExit(child);
  child.kill(signal);
  await exited;
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!isRunning(child)) return;
  const exited = waitExit(child);
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// Docker backend

let dockerProbe: Promise<boolean> | undefined;

// Only ask testcontainers when a Docker endpoint plausibly exists, and never wait long for it.
function dockerReachable(): Promise<boolean> {
  dockerProbe ??= (async () => {
    const sockets = [
      "/var/run/docker.sock",
      join(homedir(), ".docker/run/docker.sock"),
      join(homedir(), ".docker/desktop/docker.sock"),
      process.env.XDG_RUNTIME_DIR ? join(process.env.XDG_RUNTIME_DIR, "docker.sock") : "",
    ];
    const hinted =
      !!process.env.DOCKER_HOST ||
      !!process.env.TESTCONTAINERS_HOST_OVERRIDE ||
      existsSync(join(homedir(), ".testcontainers.properties")) ||
      sockets.some((s) => s && existsSync(s));
    if (!hinted) return false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), DOCKER_PROBE_MS);
    });
    const probe = (async () => {
      try {
        const { getContainerRuntimeClient } = await import("testcontainers");
        await getContainerRuntimeClient();
        return true;
      } catch {
        return false;
      }
    })();
    try {
      return await Promise.race([probe, timeout]);
    } finally {
      clearTimeout(timer);
    }
  })();
  return dockerProbe;
}

async function startDocker(opts: NatsServerOptions): Promise<NatsServerHandle> {
  const jetstream = opts.jetstream ?? true;
  const { GenericContainer, Wait, getContainerRuntimeClient } = await import("testcontainers");
  const client = await getContainerRuntimeClient();
  const port = opts.port ?? (await freePort());
  const storeDir = opts.storeDir ?? "/data";
  const containerStore = "/data";
  const logs = new LineRing(LOG_LINES);

  let container = new GenericContainer(DOCKER_IMAGE)
    .withExposedPorts({ container: 4222, host: port })
    .withWaitStrategy(Wait.forListeningPorts())
    .withStartupTimeout(60_000)
    .withLogConsumer((stream) => stream.on("data", (chunk: Buffer | string) => logs.write(chunk)));
  if (opts.storeDir) container = container.withBindMounts([{ source: opts.storeDir, target: containerStore, mode: "rw" }]);
  if (opts.systemAccount) {
    const conf = systemAccountConfig({ host: "0.0.0.0", port: 4222, storeDir: jetstream ? containerStore : undefined });
    container = container
      .withCopyContentToContainer([{ content: conf, target: "/etc/muster/nats-server.conf" }])
      .withCommand(["-c", "/etc/muster/nats-server.conf", ...(opts.args ?? [])]);
  } else {
    container = container.withCommand(["-p", "4222", ...(jetstream ? ["-js", "-sd", containerStore] : []), ...(opts.args ?? [])]);
  }

  let started: StartedTestContainer;
  try {
    started = await container.start();
  } catch (err) {
    throw new Error(`nats-server container failed to start\n${logs.text()}`, { cause: err });
  }
  const host = started.getHost();
  const ready = () =>
    waitReady({
      host,
      port,
      jetstream,
      systemAccount: !!opts.systemAccount,
      exited: new Promise<string>(() => {}),
      listening: () => true,
      logs,
    });
  await ready();

  const ref = client.container.getById(started.getId());
  let running = true;
  let removed = false;
  return {
    url: `nats://${host}:${port}`,
    port,
    storeDir,
    pid: undefined,
    backend: "docker",
    logs: () => logs.text(),
    stop: async () => {
      if (!running) return;
      await client.container.stop(ref, { timeout: STOP_GRACE_MS / 1000 });
      running = false;
    },
    kill: async (signal = "SIGKILL") => {
      if (!running) return;
      await ref.kill({ signal });
      await ref.wait();
      running = false;
    },
    restart: async () => {
      if (removed) throw new Error("nats-server fixture: restart() after cleanup()");
      if (running) await client.container.stop(ref, { timeout: STOP_GRACE_MS / 1000 });
      await client.container.start(ref);
      running = true;
      await ready();
    },
    cleanup: async () => {
      if (removed) return;
      removed = true;
      if (running) await client.container.stop(ref, { timeout: STOP_GRACE_MS / 1000 });
      running = false;
      await client.container.remove(ref, { removeVolumes: true });
    },
    setStoreLimit: () => Promise.reject(new Error("nats-server fixture: setStoreLimit needs the binary backend (MUSTER_TEST_NATS=binary)")),
  };
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

// nats-server 2.9 configuration syntax; nothing here needs 2.10.
function systemAccountConfig(o: { host: string; port: number; storeDir: string | undefined }): string {
  const { sys, app } = NATS_TEST_USERS;
  return [
    `listen: "${o.host}:${o.port}"`,
    o.storeDir === undefined ? "" : `jetstream: { store_dir: ${JSON.stringify(o.storeDir)} }`,
    "accounts: {",
    `  SYS: { users: [ { user: "${sys.user}", password: "${sys.pass}" } ] }`,
    `  APP: { ${o.storeDir === undefined ? "" : "jetstream: enabled, "}users: [ { user: "${app.user}", password: "${app.pass}" } ] }`,
    "}",
    "system_account: SYS",
    "",
  ].join("\n");
}

interface ReadyOptions {
  host: string;
  port: number;
  jetstream: boolean;
  systemAccount: boolean;
  /** Resolves with a reason if the server process dies before it is ready. */
  exited: Promise<string>;
  /** True once this server reported that it listens, so a foreign server on the port is never mistaken for it. */
  listening: () => boolean;
  logs: LineRing;
}

// Ready means: the port accepts TCP, and (with JetStream) the account answers JetStream API calls.
async function waitReady(o: ReadyOptions): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let died: string | undefined;
  void o.exited.then((reason) => {
    died = reason;
  });
  const fail = (why: string, cause?: unknown): never => {
    throw new Error(`nats-server on ${o.host}:${o.port} not ready: ${why}\n--- server output (last ${LOG_LINES} lines) ---\n${o.logs.text()}`, {
      cause,
    });
  };

  let lastErr: unknown;
  for (;;) {
    if (died) fail(died);
    if (o.listening() && (await tcpOpen(o.host, o.port))) break;
    if (Date.now() >= deadline) fail(`port not accepting connections after ${READY_TIMEOUT_MS} ms`);
    await delay(POLL_MS);
  }
  if (!o.jetstream) return;

  const auth = o.systemAccount ? NATS_TEST_USERS.app : undefined;
  for (;;) {
    if (died) fail(died);
    try {
      const nc = await connect({ servers: `${o.host}:${o.port}`, reconnect: false, timeout: 1_000, ...auth });
      try {
        const jsm = await jetstreamManager(nc, { timeout: 1_000 });
        await jsm.getAccountInfo();
        return;
      } finally {
        await nc.close().catch(() => {});
      }
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() >= deadline) fail(`JetStream not answering after ${READY_TIMEOUT_MS} ms: ${String(lastErr)}`, lastErr);
    await delay(POLL_MS);
  }
}

function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host, port });
    const done = (ok: boolean) => {
      sock.removeAllListeners();
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once("connect", () => done(true));
    sock.once("error", () => done(false));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error("could not allocate a free port"))));
    });
  });
}

// Keeps the last `max` lines the server printed, across restarts.
class LineRing {
  private readonly lines: string[] = [];
  private partial = "";
  constructor(private readonly max: number) {}

  /** Appends output and returns the lines it completed. */
  write(chunk: Buffer | string): string[] {
    const parts = (this.partial + chunk.toString()).split("\n");
    this.partial = parts.pop() ?? "";
    for (const line of parts) this.push(line);
    return parts;
  }

  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }

  text(): string {
    return [...this.lines, ...(this.partial ? [this.partial] : [])].join("\n");
  }
}

/**
 * `muster agent --node NAME [--slots N]`: runs the agent in this process until SIGTERM or SIGINT
 * (graceful shutdown; a second signal kills the tasks at once), or until an uncaught exception or
 * unhandled rejection (best-effort `bye` with reason `fatal` within 5 s, then exit status 1).
 */
import { hostname } from "node:os";
import type { Config, ConfigFlags } from "../../src/config.js";
import { loadConfig } from "../../src/config.js";
import { MusterError } from "../../src/errors.js";
import type { Logger } from "../../src/logger.js";
import { createLogger } from "../../src/logger.js";
import { isToken } from "../../src/protocol/index.js";
import { createAgent, type Agent } from "./agent.service.js";

/** How runAgent is told what to run when not given command-line arguments. */
export interface RunAgentOptions {
  /** Node name (default: the host name's first label, made a valid token). */
  readonly node?: string;
  readonly slots?: number;
  /** Environment for settings and for the tasks (default process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Resolved settings; when absent they are loaded from `env` and `flags`. */
  readonly config?: Config;
  /** Settings given as flags, over the environment. */
  readonly flags?: ConfigFlags;
  readonly logger?: Logger;
  readonly musterBinDir?: string;
  /** Called once the agent is started (tests, the local cluster). */
  readonly onStarted?: (agent: Agent) => void;
}

/** Fatal exits wait at most this long for `bye`, ms. */
const FATAL_BYE_MS = 5_000;

/** Parses `--node NAME`, `--slots N` (also `--node=NAME`); throws MusterError USAGE naming the bad argument. */
export function parseAgentArgs(argv: readonly string[]): { node?: string; slots?: number } {
  const out: { node?: string; slots?: number } = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf("=");
    const name = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith("--") && eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new MusterError("USAGE", `${name} needs a value`);
      return v;
    };
    switch (name) {
      case "--node": {
        const v = value();
        if (!isToken(v)) throw new MusterError("USAGE", `--node ${JSON.stringify(v)}: a node name is 1..128 of [A-Za-z0-9_-]`);
        out.node = v;
        break;
      }
      case "--slots": {
        const v = value();
        const n = Number(v);
        if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new MusterError("USAGE", `--slots ${JSON.stringify(v)}: expected a positive integer`);
        out.slots = n;
        break;
      }
      default:
        throw new MusterError("USAGE", `unknown argument for muster agent: ${arg}`);
    }
  }
  return out;
}

/** The default node name: the host name's first label with anything outside [A-Za-z0-9_-] replaced. */
export function defaultNodeName(host: string = hostname()): string {
  const name = (host.split(".")[0] ?? "").replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 128);
  return name || "node";
}

/** Runs an agent until it is stopped; resolves with the exit status (0 after a graceful shutdown). */
export async function runAgent(input: readonly string[] | RunAgentOptions = {}): Promise<number> {
  const opts: RunAgentOptions = isArgv(input) ? parseAgentArgs(input) : input;
  const env = opts.env ?? process.env;
  const config = opts.config ?? loadConfig(env, opts.flags);
  const logger = opts.logger ?? createLogger({ level: config.logLevel, name: "muster" });
  const node = opts.node ?? defaultNodeName();
  const agent = createAgent({
    config,
    node,
    logger,
    env,
    ...(opts.slots === undefined ? {} : { slots: opts.slots }),
    ...(opts.musterBinDir === undefined ? {} : { musterBinDir: opts.musterBinDir }),
  });

  let signals = 0;
  let stopped: (() => void) | undefined;
  const stop = new Promise<void>((resolve) => (stopped = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    logger.info({ signal, node }, signals === 1 ? "agent.signal" : "agent.signal_again");
    // A second signal kills the tasks now; the shutdown still reports them and says bye.
    void agent.shutdown(signals === 1 ? "shutdown" : "fatal", `received ${signal}`);
    stopped?.();
  };
  const onFatal = (err: unknown): void => {
    logger.fatal({ err, node }, "agent.fatal");
    const detail = err instanceof Error ? err.message : String(err);
    const timer = setTimeout(() => exitNow(logger, 1), FATAL_BYE_MS);
    timer.unref();
    void agent.shutdown("fatal", detail).finally(() => exitNow(logger, 1));
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  process.on("uncaughtException", onFatal);
  process.on("unhandledRejection", onFatal);
  // Test-only fault injection: MUSTER_AGENT_CRASH_AFTER_MS=N throws an uncaught exception N ms after
  // the agent started, to exercise the fatal path (docs/agent.md, "Shutdown").
  const crashAfterMs = Number(env.MUSTER_AGENT_CRASH_AFTER_MS);
  let crash: NodeJS.Timeout | undefined;
  try {
    await agent.start();
    opts.onStarted?.(agent);
    if (env.MUSTER_AGENT_CRASH_AFTER_MS && Number.isFinite(crashAfterMs) && crashAfterMs >= 0) {
      crash = setTimeout(() => {
        throw new Error(`injected crash (MUSTER_AGENT_CRASH_AFTER_MS=${env.MUSTER_AGENT_CRASH_AFTER_MS})`);
      }, crashAfterMs);
    }
    await stop;
    await agent.shutdown();
    return 0;
  } catch (err) {
    await agent.shutdown("fatal", err instanceof Error ? err.message : String(err));
    if (signals > 0) return 0; // stopped while still connecting
    throw err;
  } finally {
    clearTimeout(crash);
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
    process.off("uncaughtException", onFatal);
    process.off("unhandledRejection", onFatal);
  }
}

function isArgv(input: readonly string[] | RunAgentOptions): input is readonly string[] {
  return Array.isArray(input);
}

function exitNow(logger: Logger, code: number): void {
  logger.flush(() => process.exit(code));
  setTimeout(() => process.exit(code), 500).unref();
}

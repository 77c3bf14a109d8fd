/** Connecting to NATS the same way in every command and service, with the `nats` CLI's settings. */
import { readFileSync } from "node:fs";
import { connect, credsAuthenticator, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
import type { Config } from "../config.js";
import { MusterError } from "../errors.js";

/** How a connection behaves when the server goes away. */
export interface ConnectOptions {
  /** Connection name shown by the server (`muster-agent-node-1`). */
  readonly name: string;
  /** Keep reconnecting forever (services) or give up at once (CLI commands). Default true. */
  readonly reconnect?: boolean;
}

/** The nats.js options derived from muster's settings. */
export function natsOptions(cfg: Config, opts: ConnectOptions): ConnectionOptions {
  const reconnect = opts.reconnect ?? true;
  const o: ConnectionOptions = {
    servers: cfg.natsUrl.split(",").map((s) => s.trim()).filter(Boolean),
    name: opts.name,
    timeout: cfg.timeoutSeconds * 1000,
    reconnect,
    maxReconnectAttempts: reconnect ? -1 : 0,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    pingInterval: 10_000,
    waitOnFirstConnect: false,
    // Without this, nats.js builds an Error (a stack capture) for every request and JetStream publish,
    // only to decorate a possible timeout: 7 % of the supervisor's busy time on the notification path.
    noAsyncTraces: true,
  };
  if (cfg.natsUser) {
    o.user = cfg.natsUser;
    o.pass = cfg.natsPassword ?? "";
  }
  if (cfg.natsToken) o.token = cfg.natsToken;
  if (cfg.natsCreds) {
    try {
      const creds = readFileSync(cfg.natsCreds);
      o.authenticator = credsAuthenticator(new Uint8Array(creds));
    } catch (err) {
      throw new MusterError("CONFIG", `cannot read NATS credentials file ${cfg.natsCreds}: ${(err as Error).message}`, undefined, { cause: err });
    }
  }
  if (cfg.natsCert || cfg.natsKey || cfg.natsCa) {
    o.tls = { certFile: cfg.natsCert, keyFile: cfg.natsKey, caFile: cfg.natsCa };
  }
  return o;
}

/** The settings of the system-account connection (same servers and TLS, the system user's credentials), or undefined when none are configured. */
export function systemAccountConfig(cfg: Config): Config | undefined {
  if (!cfg.sysUser && !cfg.sysCreds) return undefined;
  return { ...cfg, natsUser: cfg.sysUser, natsPassword: cfg.sysPassword, natsCreds: cfg.sysCreds, natsToken: undefined };
}

/** Connects, turning a failure into a MusterError UNAVAILABLE that names the server. */
export async function connectNats(cfg: Config, opts: ConnectOptions): Promise<NatsConnection> {
  try {
    return await connect(natsOptions(cfg, opts));
  } catch (err) {
    throw new MusterError("UNAVAILABLE", `cannot connect to NATS at ${cfg.natsUrl}: ${(err as Error).message}`, undefined, { cause: err });
  }
}

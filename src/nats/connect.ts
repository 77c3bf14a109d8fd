/** Connecting to NATS the same way in every command and service, with the `nats` CLI's settings. */
import { readFileSync } from "node:fs";
import { connect, credsAuthenticator, nkeyAuthenticator, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
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
  if (cfg.natsNkey) {
    let seed: string;
    try {
      seed = readFileSync(cfg.natsNkey, "utf8");
    } catch (err) {
      throw new MusterError("CONFIG", `cannot read NATS nkey file ${cfg.natsNkey}: ${(err as Error).message}`, undefined, { cause: err });
    }
    const line = seed.split(/\r?\n/).map((l) => l.trim()).find((l) => l.startsWith("SU"));
    if (!line) throw new MusterError("CONFIG", `NATS nkey file ${cfg.natsNkey} holds no user seed (a line starting with SU)`);
    o.authenticator = nkeyAuthenticator(new TextEncoder().encode(line));
  }
  // A tls:// URL demands TLS, as the `nats` CLI does: nats.js alone would fall back to plain text.
  const tlsUrl = (o.servers as string[]).some((s) => /^tls:\/\//i.test(s));
  if (cfg.natsCert || cfg.natsKey || cfg.natsCa || tlsUrl) {
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
    if (err instanceof MusterError) throw err;
    let why = (err as Error).message;
    if (/does not support 'tls'/i.test(why)) why = "the server does not offer TLS, which a tls:// URL or a TLS option demands";
    throw new MusterError("UNAVAILABLE", `cannot connect to NATS at ${cfg.natsUrl}: ${why}`, undefined, { cause: err });
  }
}

/**
 * Why JetStream is not there on this connection (not enabled on the server or for the account), or
 * undefined when it answers. A JetStream that is there but momentarily unable to answer (a cluster
 * without a meta leader, a timeout) is not "missing": services ride that out.
 */
export async function jetStreamMissing(nc: NatsConnection, timeoutMs = 1000): Promise<string | undefined> {
  try {
    const reply = await nc.request("$JS.API.INFO", "", { timeout: timeoutMs });
    const info = JSON.parse(new TextDecoder().decode(reply.data)) as { error?: { code?: number; err_code?: number; description?: string } };
    // 10039: JetStream not enabled for the account; 10076: not enabled on the server.
    const e = info.error;
    if (e && (e.err_code === 10039 || e.err_code === 10076 || /not enabled/i.test(e.description ?? ""))) return e.description ?? "JetStream not enabled";
    return undefined;
  } catch (err) {
    const e = err as Error;
    if (/no responders/i.test(e.message)) return "nothing answers $JS.API.INFO";
    return undefined;
  }
}

/** The one-line error for a NATS without JetStream. */
export function noJetStreamError(cfg: Config, why: string): MusterError {
  return new MusterError("UNAVAILABLE", `NATS at ${cfg.natsUrl} has no JetStream (${why}): muster keeps its jobs and events there; start nats-server with -js`);
}

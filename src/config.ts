/**
 * Every setting of muster in one zod schema, with its default and unit. `loadConfig(env, flags)`
 * resolves flags over environment over defaults, validates and freezes; nothing else reads process.env.
 */
import { userInfo } from "node:os";
import { z } from "zod";
import { MusterError } from "./errors.js";

const seconds = (dflt: number) => z.coerce.number().positive().default(dflt);

/** The settings schema: NATS connection (the `nats` CLI's conventions), naming, timings, storage. */
export const ConfigSchema = z.object({
  /** NATS server URL(s), comma-separated (NATS_URL, --server). */
  natsUrl: z.string().min(1).default("nats://127.0.0.1:4222"),
  /** Credentials file (NATS_CREDS, --creds). */
  natsCreds: z.string().min(1).optional(),
  /** NKey seed file (NATS_NKEY, --nkey). */
  natsNkey: z.string().min(1).optional(),
  natsUser: z.string().min(1).optional(),
  natsPassword: z.string().optional(),
  natsToken: z.string().min(1).optional(),
  /** TLS client certificate, key and CA files (NATS_CERT, NATS_KEY, NATS_CA; --tlscert, --tlskey, --tlsca). */
  natsCert: z.string().min(1).optional(),
  natsKey: z.string().min(1).optional(),
  natsCa: z.string().min(1).optional(),
  /** System-account credentials for the supervisor's fast node-loss path (MUSTER_SYS_USER, MUSTER_SYS_PASSWORD, MUSTER_SYS_CREDS). */
  sysUser: z.string().min(1).optional(),
  sysPassword: z.string().optional(),
  sysCreds: z.string().min(1).optional(),
  /** After a disconnect advisory, seconds a node has to come back before it is lost (MUSTER_DISCONNECT_GRACE). */
  disconnectGraceSeconds: z.coerce.number().min(0).default(0.5),
  /** Seconds to wait for a connection or a reply (NATS_TIMEOUT, --timeout). */
  timeoutSeconds: seconds(5),
  /**
   * Client commands: how long a request asks again while no supervisor answers (a supervisor
   * restarting), seconds (MUSTER_SUPERVISOR_WAIT). Default 0.3, so that a supervisor that is down is
   * said at once; inside a job (MUSTER_JOB_ID set: a batch script, where nobody is waiting to read
   * the error) the request timeout, so that a step started during a supervisor restart still runs.
   */
  supervisorWaitSeconds: z.coerce.number().min(0).max(600).default(0.3),
  /** Subject prefix, so two installations can share one NATS (MUSTER_PREFIX). */
  prefix: z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/).default("muster"),
  /** The acting user, the token in `<prefix>.ctl.<user>.*` (MUSTER_USER; default the OS user). */
  user: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, "user names are [A-Za-z0-9_-]"),
  /** Agent heartbeat interval, seconds (MUSTER_HEARTBEAT_INTERVAL). */
  heartbeatIntervalSeconds: seconds(2),
  /** Silence after which a node is lost, seconds (MUSTER_NODE_TIMEOUT). */
  nodeTimeoutSeconds: seconds(10),
  /** Default KillWait between TERM and KILL, seconds (MUSTER_KILL_WAIT). */
  killWaitSeconds: z.coerce.number().min(0).default(10),
  /** JetStream replicas for muster's streams and buckets: 1 on a laptop, 3 in a cluster (MUSTER_REPLICAS). */
  replicas: z.coerce.number().int().min(1).max(5).default(1),
  /** How long finished jobs stay queryable, seconds (MUSTER_HISTORY_RETENTION; default 7 days). */
  historyRetentionSeconds: seconds(7 * 24 * 3600),
  /**
   * Supervisor: how long a job's changes from task events may wait before they are saved (and the
   * events acknowledged), seconds (MUSTER_SAVE_INTERVAL). Job ends, notifications and commands save at once.
   */
  saveIntervalSeconds: z.coerce.number().min(0).max(60).default(0.2),
  /**
   * Agent: give tasks Slurm's variables (SLURM_JOB_ID, SLURM_PROCID, SLURM_NTASKS …) beside MUSTER_*,
   * so a Slurm user's script runs unchanged (MUSTER_SLURM_ENV; 0 turns it off).
   */
  slurmEnv: z
    .union([z.boolean(), z.enum(["1", "0", "true", "false", "yes", "no", "on", "off"])])
    .transform((v) => v === true || v === "1" || v === "true" || v === "yes" || v === "on")
    .default(true),
  /** Log level (MUSTER_LOG_LEVEL). */
  logLevel: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
});

/** Resolved, frozen settings. */
export type Config = Readonly<z.infer<typeof ConfigSchema>>;

/** Settings given as command-line flags (already parsed), by config key. */
export type ConfigFlags = Partial<Record<keyof Config, string | number | undefined>>;

const ENV: Record<keyof Config, string> = {
  natsUrl: "NATS_URL",
  natsCreds: "NATS_CREDS",
  natsNkey: "NATS_NKEY",
  natsUser: "NATS_USER",
  natsPassword: "NATS_PASSWORD",
  natsToken: "NATS_TOKEN",
  natsCert: "NATS_CERT",
  natsKey: "NATS_KEY",
  natsCa: "NATS_CA",
  sysUser: "MUSTER_SYS_USER",
  sysPassword: "MUSTER_SYS_PASSWORD",
  sysCreds: "MUSTER_SYS_CREDS",
  disconnectGraceSeconds: "MUSTER_DISCONNECT_GRACE",
  timeoutSeconds: "NATS_TIMEOUT",
  supervisorWaitSeconds: "MUSTER_SUPERVISOR_WAIT",
  prefix: "MUSTER_PREFIX",
  user: "MUSTER_USER",
  heartbeatIntervalSeconds: "MUSTER_HEARTBEAT_INTERVAL",
  nodeTimeoutSeconds: "MUSTER_NODE_TIMEOUT",
  killWaitSeconds: "MUSTER_KILL_WAIT",
  replicas: "MUSTER_REPLICAS",
  historyRetentionSeconds: "MUSTER_HISTORY_RETENTION",
  saveIntervalSeconds: "MUSTER_SAVE_INTERVAL",
  slurmEnv: "MUSTER_SLURM_ENV",
  logLevel: "MUSTER_LOG_LEVEL",
};

/** The environment variable each setting is read from. */
export const CONFIG_ENV: Readonly<Record<keyof Config, string>> = ENV;

/** Settings read from a `nats` CLI context: below the environment, above the defaults. */
export interface ConfigContext {
  readonly name: string;
  readonly settings: ConfigFlags;
}

/**
 * Resolves settings: flags over environment over the `nats` context (if any) over defaults; throws
 * MusterError CONFIG naming the bad setting.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>, flags: ConfigFlags = {}, context?: ConfigContext): Config {
  const raw: Record<string, unknown> = {};
  const fromContext = new Set<string>();
  for (const key of Object.keys(ENV) as (keyof Config)[]) {
    let v = flags[key] ?? env[ENV[key]];
    if ((v === undefined || v === "") && context?.settings[key] !== undefined) {
      v = context.settings[key];
      fromContext.add(key);
    }
    if (v !== undefined && v !== "") raw[key] = v;
  }
  raw.user ??= defaultUser(env);
  if (raw.supervisorWaitSeconds === undefined && env.MUSTER_JOB_ID) raw.supervisorWaitSeconds = raw.timeoutSeconds ?? 5;
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = String(issue.path[0] ?? "");
    const source = flags[key as keyof Config] !== undefined ? `--${key}` : fromContext.has(key) ? `${key} of NATS context "${context!.name}"` : (ENV[key as keyof Config] ?? key);
    throw new MusterError("CONFIG", `bad setting ${source}=${JSON.stringify(raw[key])}: ${issue.message}`);
  }
  return Object.freeze(parsed.data);
}

function defaultUser(env: Readonly<Record<string, string | undefined>>): string {
  const name = env.USER ?? env.LOGNAME ?? safeUserName();
  return name.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 128) || "user";
}

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return "user";
  }
}

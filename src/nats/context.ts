/**
 * The `nats` CLI's contexts: named connection settings in `~/.config/nats/context/NAME.json`, the
 * selected one named in `~/.config/nats/context.txt` (`nats context select NAME`). muster reads
 * them as the `nats` CLI does, below its flags and environment variables.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ConfigFlags } from "../config.js";
import { MusterError } from "../errors.js";

/** The fields of a context file muster uses, and the setting each one gives. */
const FIELDS = {
  url: "natsUrl",
  creds: "natsCreds",
  nkey: "natsNkey",
  user: "natsUser",
  password: "natsPassword",
  token: "natsToken",
  cert: "natsCert",
  key: "natsKey",
  ca: "natsCa",
} as const;

/** Fields that name files, where `~/` stands for the home folder. */
const FILE_FIELDS: ReadonlySet<string> = new Set(["creds", "nkey", "cert", "key", "ca"]);

/** A context read from disk: its name, file and the settings it gives. */
export interface NatsContext {
  readonly name: string;
  readonly file: string;
  readonly settings: ConfigFlags;
}

/** The `nats` CLI's configuration folder: `$XDG_CONFIG_HOME/nats`, else `~/.config/nats`. */
function natsConfigDir(env: Readonly<Record<string, string | undefined>>): string | undefined {
  if (env.XDG_CONFIG_HOME) return join(env.XDG_CONFIG_HOME, "nats");
  return env.HOME ? join(env.HOME, ".config", "nats") : undefined;
}

/**
 * Reads the context `name` (from `--context` or NATS_CONTEXT), or else the selected one if any.
 * A named context that cannot be read is a CONFIG error; no selection means no context.
 */
export function readNatsContext(name: string | undefined, env: Readonly<Record<string, string | undefined>>): NatsContext | undefined {
  const dir = natsConfigDir(env);
  const explicit = name ?? (env.NATS_CONTEXT || undefined);
  let chosen = explicit;
  if (chosen === undefined) {
    if (!dir) return undefined;
    try {
      chosen = readFileSync(join(dir, "context.txt"), "utf8").trim() || undefined;
    } catch {
      return undefined;
    }
    if (chosen === undefined) return undefined;
  }
  if (!/^[A-Za-z0-9_.-]+$/.test(chosen) || chosen.startsWith(".")) throw new MusterError("CONFIG", `bad NATS context name "${chosen}"`);
  if (!dir) throw new MusterError("CONFIG", `cannot find NATS context "${chosen}": HOME is not set`);
  const file = join(dir, "context", `${chosen}.json`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === "ENOENT" ? "no such context" : e.message;
    throw new MusterError("CONFIG", `cannot read NATS context "${chosen}" (${file}): ${why}`, undefined, { cause: err });
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new MusterError("CONFIG", `NATS context "${chosen}" (${file}) is not a JSON object`);
  const settings: ConfigFlags = {};
  for (const [field, key] of Object.entries(FIELDS)) {
    const v = (raw as Record<string, unknown>)[field];
    if (typeof v === "string" && v !== "") settings[key] = FILE_FIELDS.has(field) ? expandHome(v, env) : v;
  }
  return { name: chosen, file, settings };
}

/** `~/x` as the `nats` CLI expands it in file paths. */
function expandHome(v: string, env: Readonly<Record<string, string | undefined>>): string {
  return v.startsWith("~/") && env.HOME ? join(env.HOME, v.slice(2)) : v;
}

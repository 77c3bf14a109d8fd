/**
 * A small, strict argument parser: known options only, one-line errors naming the bad argument
 * (exit status 2), `--` and the first positional end option parsing (like srun: `muster run -n 4 hostname`).
 */
import { MusterError } from "../errors.js";
import { unsupportedSlurmFlag } from "./slurm-flags.js";

/** One option a command accepts. */
export interface OptionSpec {
  /** Long name without dashes (`ntasks`). */
  readonly name: string;
  /** One-letter short name (`n`). */
  readonly short?: string;
  readonly type: "string" | "int" | "number" | "boolean";
  readonly help: string;
  /** Placeholder in help (`N`). */
  readonly arg?: string;
}

/** Parsed arguments. */
export interface ParsedArgs {
  readonly options: Readonly<Record<string, string | number | boolean>>;
  readonly positionals: readonly string[];
}

/** Options every command takes: how to reach NATS (the `nats` CLI's names) and the subject prefix. */
export const CONNECTION_OPTIONS: readonly OptionSpec[] = [
  { name: "server", short: "s", type: "string", arg: "URL", help: "NATS server URL(s) (env NATS_URL)" },
  { name: "creds", type: "string", arg: "FILE", help: "NATS credentials file (env NATS_CREDS)" },
  { name: "nkey", type: "string", arg: "FILE", help: "NATS NKey seed file (env NATS_NKEY)" },
  { name: "user", type: "string", arg: "USER", help: "NATS user name (env NATS_USER)" },
  { name: "password", type: "string", arg: "PASS", help: "NATS password (env NATS_PASSWORD)" },
  { name: "token", type: "string", arg: "TOKEN", help: "NATS token (env NATS_TOKEN)" },
  { name: "tlscert", type: "string", arg: "FILE", help: "TLS client certificate (env NATS_CERT)" },
  { name: "tlskey", type: "string", arg: "FILE", help: "TLS client key (env NATS_KEY)" },
  { name: "tlsca", type: "string", arg: "FILE", help: "TLS CA certificate (env NATS_CA)" },
  { name: "timeout", type: "number", arg: "SEC", help: "connect and request timeout (env NATS_TIMEOUT)" },
  { name: "context", type: "string", arg: "NAME", help: "the nats CLI's context NAME (env NATS_CONTEXT; default: the selected one, if any)" },
  { name: "prefix", type: "string", arg: "PREFIX", help: "subject prefix (env MUSTER_PREFIX, default muster)" },
];

/**
 * The connection options given before the command name (`muster -s URL nodes`, as the `nats` CLI
 * takes them); returns them and the rest of argv from the command name on. Before the command, a
 * short option is always a connection option (`-s` is the server); after it, a command's own short
 * option of the same letter wins (`history -s` is the state filter), see `parseArgs`.
 */
export function parseGlobalArgs(argv: readonly string[]): { options: ParsedArgs["options"]; rest: readonly string[] } {
  const { options, positionals } = parseArgs("muster", argv, [], { stopAtPositional: true });
  return { options, rest: positionals };
}

/** Parses `argv` for `command`; throws MusterError USAGE naming the bad argument. */
export function parseArgs(command: string, argv: readonly string[], specs: readonly OptionSpec[], opts: { stopAtPositional?: boolean } = {}): ParsedArgs {
  // A command's own option wins over a connection option of the same name (`history -s/--user`).
  const all = [...CONNECTION_OPTIONS, { name: "help", short: "h", type: "boolean", help: "show this help" } as const, ...specs];
  const byLong = new Map(all.map((s) => [s.name, s]));
  const byShort = new Map(all.filter((s) => s.short).map((s) => [s.short!, s]));
  const options: Record<string, string | number | boolean> = {};
  const positionals: string[] = [];
  const usage = (msg: string) => new MusterError("USAGE", `${command}: ${msg}`);
  // A Slurm flag the command lacks says what to use instead (slurm-flags.ts).
  const unknownOption = (flag: string) => {
    const answer = unsupportedSlurmFlag(command, flag);
    return answer ? new MusterError("USAGE", answer) : usage(`unknown option ${flag}`);
  };
  const set = (spec: OptionSpec, raw: string | undefined, shown: string) => {
    if (spec.type === "boolean") {
      if (raw !== undefined) throw usage(`option ${shown} takes no value`);
      options[spec.name] = true;
      return;
    }
    if (raw === undefined || raw === "") throw usage(`option ${shown} needs a value`);
    if (spec.type === "int") {
      if (!/^\d+$/.test(raw)) throw usage(`option ${shown} needs a whole number, not "${raw}"`);
      options[spec.name] = Number(raw);
    } else if (spec.type === "number") {
      if (!/^\d+(\.\d+)?$/.test(raw)) throw usage(`option ${shown} needs a number, not "${raw}"`);
      options[spec.name] = Number(raw);
    } else options[spec.name] = raw;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = a.slice(2, eq < 0 ? undefined : eq);
      const spec = byLong.get(name);
      if (!spec) throw unknownOption(`--${name}`);
      const inline = eq < 0 ? undefined : a.slice(eq + 1);
      set(spec, spec.type === "boolean" || inline !== undefined ? inline : argv[++i], `--${name}`);
      continue;
    }
    if (a.startsWith("-") && a.length > 1 && !/^-\d/.test(a)) {
      const spec = byShort.get(a[1]!);
      if (!spec) throw unknownOption(`-${a[1]}`);
      // After `run` or `batch`, a Slurm short flag is srun's or sbatch's, not a connection option (srun -s is --oversubscribe).
      if (CONNECTION_OPTIONS.includes(spec)) {
        const answer = unsupportedSlurmFlag(command, `-${a[1]}`);
        if (answer) throw new MusterError("USAGE", answer);
      }
      if (spec.type === "boolean") {
        set(spec, undefined, `-${a[1]}`);
        for (const c of a.slice(2)) {
          const more = byShort.get(c);
          if (!more || more.type !== "boolean") throw usage(`unknown option -${c} in ${a}`);
          set(more, undefined, `-${c}`);
        }
      } else set(spec, a.length > 2 ? a.slice(2) : argv[++i], `-${a[1]}`);
      continue;
    }
    positionals.push(a);
    if (opts.stopAtPositional) {
      positionals.push(...argv.slice(i + 1));
      break;
    }
  }
  return { options, positionals };
}

/** The config flags carried by the connection options (`context` names the nats CLI context to read). */
export function connectionFlags(o: ParsedArgs["options"]): Record<string, string | undefined> {
  const s = (k: string) => (o[k] === undefined ? undefined : String(o[k]));
  return {
    natsUrl: s("server"),
    natsCreds: s("creds"),
    natsNkey: s("nkey"),
    natsUser: s("user"),
    natsPassword: s("password"),
    natsToken: s("token"),
    natsCert: s("tlscert"),
    natsKey: s("tlskey"),
    natsCa: s("tlsca"),
    timeoutSeconds: s("timeout"),
    prefix: s("prefix"),
    context: s("context"),
  };
}

/** Renders the option list of a command for --help. */
export function renderOptions(specs: readonly OptionSpec[]): string {
  const rows = specs.map((s) => {
    const flag = `${s.short ? `-${s.short}, ` : "    "}--${s.name}${s.arg ? ` ${s.arg}` : ""}`;
    return [flag, s.help] as const;
  });
  const width = Math.max(...rows.map(([f]) => f.length));
  return rows.map(([f, h]) => `  ${f.padEnd(width)}  ${h}`).join("\n");
}

/** Parses Slurm's time formats (`MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`) into seconds. */
export function parseTimeLimit(text: string): number {
  const bad = () => new MusterError("USAGE", `bad time limit "${text}": use MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS`);
  const m = /^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$/.exec(text.trim());
  if (!m) throw bad();
  const [, d, a, b, c] = m;
  const n = (x: string | undefined) => (x === undefined ? 0 : Number(x));
  let secs: number;
  if (d !== undefined) secs = n(d) * 86400 + n(a) * 3600 + n(b) * 60 + n(c);
  else if (c !== undefined) secs = n(a) * 3600 + n(b) * 60 + n(c);
  else if (b !== undefined) secs = n(a) * 60 + n(b);
  else secs = n(a) * 60;
  if (secs <= 0) throw bad();
  return secs;
}

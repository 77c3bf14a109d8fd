/**
 * The `muster` command: parses arguments, runs one command, and turns every error into a one-line
 * message and an exit status (2 for a usage error). Help, the version and usage errors are answered
 * from the option specs alone (specs.ts); the configuration schema, the protocol, NATS and a
 * command's own module are imported only when that command runs, so `muster --help` starts fast.
 * The CLI talks to services only over NATS; the service commands (`up`, `supervisor`, `agent`,
 * `inspect`) run through the entry bin/muster.js passes in.
 */
import type { Config } from "../config.js";
import { MusterError } from "../errors.js";
import { connectionFlags, parseArgs, parseGlobalArgs, type ParsedArgs } from "./args.js";
import { COMMANDS, VERSION, commandHelp, mainHelp, type CommandDef, type CommandMain } from "./specs.js";

/** Runs a service command with its parsed arguments and configuration; resolves with the exit status. */
export type ServiceMain = (name: string, args: ParsedArgs, config: Config, env: Readonly<Record<string, string | undefined>>) => Promise<number>;

/** The module of each client command, imported only when that command runs. */
const CLIENT_COMMANDS: Readonly<Record<string, () => Promise<CommandMain>>> = {
  run: async () => (await import("./commands/run.js")).runMain,
  batch: async () => (await import("./commands/batch.js")).batchMain,
  queue: async () => (await import("./commands/tables.js")).queueMain,
  history: async () => (await import("./commands/tables.js")).historyMain,
  show: async () => (await import("./commands/show.js")).showMain,
  watch: async () => (await import("./commands/watch.js")).watchMain,
  kill: async () => (await import("./commands/kill.js")).killMain,
  nodes: async () => (await import("./commands/nodes.js")).nodesMain,
  chart: async () => (await import("./commands/chart.js")).chartMain,
};

/**
 * Entry point of the `muster` binary; resolves with the exit status. `loadServices` imports the
 * service commands' entry (src/ may not import services/); without it they are a usage error.
 */
export async function main(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
  loadServices?: () => Promise<ServiceMain>,
): Promise<number> {
  const out = (s: string | Uint8Array) => process.stdout.write(s);
  const err = (s: string | Uint8Array) => process.stderr.write(s);
  try {
    if (argv[0] === "--version" || argv[0] === "-V") {
      out(`muster ${VERSION}\n`);
      return 0;
    }
    // Connection options may come before the command name, as the `nats` CLI takes them.
    const global = parseGlobalArgs(argv);
    const [name, ...rest] = global.rest;
    if (name === undefined || global.options.help || name === "--help" || name === "-h" || name === "help") {
      out(mainHelp() + "\n");
      return name === undefined && !global.options.help ? 2 : 0;
    }
    const def = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (!def) throw new MusterError("USAGE", `unknown command "${name}" (see muster --help)`);
    const args = parseArgs(name, rest, def.options, { stopAtPositional: def.stopAtPositional });
    if (args.options.help) {
      out(commandHelp(name) + "\n");
      return 0;
    }
    const config = await loadCommandConfig(def, global.options, args, env);
    const load = CLIENT_COMMANDS[name];
    if (load) return await (await load())(args, config, { env, out, err });
    if (!loadServices) throw new MusterError("USAGE", `"${name}" is a service command: run it through the muster binary`);
    // A service whose output's reader goes away stops in order, as on SIGTERM, rather than at once.
    (await import("./stdio.js")).terminateOnBrokenPipe();
    return await (await loadServices())(name, args, config, env);
  } catch (e) {
    return reportError(e, err);
  }
}

/**
 * The configuration of a command: its connection flags (after the command name, then before it)
 * over the environment over the `nats` CLI's context (--context, NATS_CONTEXT or the selected one)
 * over the defaults.
 */
async function loadCommandConfig(def: CommandDef, global: ParsedArgs["options"], args: ParsedArgs, env: Readonly<Record<string, string | undefined>>): Promise<Config> {
  // The settings schema (zod) is loaded only once a command runs, never for help or usage errors.
  const [{ loadConfig }, { readNatsContext }] = await Promise.all([import("../config.js"), import("../nats/context.js")]);
  // An option the command defines itself (`history --user`, the job owner) is not a connection flag.
  const own = new Set(def.options.map((o) => o.name));
  const after = Object.fromEntries(Object.entries(args.options).filter(([k]) => !own.has(k)));
  const { context, ...flags } = connectionFlags({ ...global, ...after });
  const ctx = readNatsContext(context, env);
  return loadConfig(env, flags, ctx);
}

/** Prints an error as one line and returns its exit status: 2 for usage and configuration, 1 otherwise. */
export function reportError(e: unknown, err: (s: string) => void): number {
  if (e instanceof MusterError) {
    err(`muster: error: ${e.message}\n`);
    return e.code === "USAGE" || e.code === "CONFIG" ? 2 : 1;
  }
  err(`muster: error: ${e instanceof Error ? e.message : String(e)}\n`);
  return 1;
}

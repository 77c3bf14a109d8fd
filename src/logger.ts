/** The root pino logger, built once at start and passed down; pretty in a terminal, JSON otherwise. */
import { pino, type Logger } from "pino";

export type { Logger } from "pino";

/** Options of the root logger. */
export interface LoggerOptions {
  readonly level?: string;
  /** Pretty-print (pino-pretty); default: when stderr is a terminal. */
  readonly pretty?: boolean;
  readonly name?: string;
}

/** Builds the root logger; logs go to stderr so stdout stays the command's own output. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? "info";
  const pretty = opts.pretty ?? Boolean(process.stderr.isTTY);
  if (pretty) {
    return pino({
      level,
      name: opts.name,
      transport: { target: "pino-pretty", options: { destination: 2, colorize: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" } },
    });
  }
  return pino({ level, name: opts.name }, pino.destination({ dest: 2, sync: false }));
}

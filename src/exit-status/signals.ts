/** Linux signal numbers, names and glibc's strsignal() texts, so every surface names a signal the same way. */

const DESCRIPTIONS: readonly string[] = [
  "", "Hangup", "Interrupt", "Quit", "Illegal instruction", "Trace/breakpoint trap", "Aborted", "Bus error",
  "Floating point exception", "Killed", "User defined signal 1", "Segmentation fault", "User defined signal 2",
  "Broken pipe", "Alarm clock", "Terminated", "Stack fault", "Child exited", "Continued", "Stopped (signal)",
  "Stopped", "Stopped (tty input)", "Stopped (tty output)", "Urgent I/O condition", "CPU time limit exceeded",
  "File size limit exceeded", "Virtual timer expired", "Profiling timer expired", "Window changed", "I/O possible",
  "Power failure", "Bad system call",
];

const NAMES: readonly string[] = [
  "", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL", "SIGUSR1",
  "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP",
  "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR",
  "SIGSYS",
];

/** Highest signal number on Linux (SIGRTMAX). */
export const MAX_SIGNAL = 64;
const SIGRTMIN = 34;

const BY_NAME: ReadonlyMap<string, number> = new Map([
  ...NAMES.map((n, i) => [n, i] as const).filter(([n]) => n !== ""),
  ["SIGIOT", 6],
  ["SIGPOLL", 29],
  ["SIGUNUSED", 31],
]);

/** glibc's strsignal() text for a signal number (`Segmentation fault`, `Real-time signal 3`). */
export function signalDescription(signal: number): string {
  const text = DESCRIPTIONS[signal];
  if (text) return text;
  if (signal >= SIGRTMIN && signal <= MAX_SIGNAL) return `Real-time signal ${signal - SIGRTMIN}`;
  return `Unknown signal ${signal}`;
}

/** The signal's symbolic name (`SIGSEGV`, `SIGRTMIN+2`). */
export function signalName(signal: number): string {
  const name = NAMES[signal];
  if (name) return name;
  if (signal === SIGRTMIN) return "SIGRTMIN";
  if (signal > SIGRTMIN && signal <= MAX_SIGNAL) return `SIGRTMIN+${signal - SIGRTMIN}`;
  return `SIG${signal}`;
}

/**
 * Parses a signal given by a user or by Node (`SIGTERM`, `TERM`, `term`, `15`, `RTMIN+2`);
 * returns undefined when it names no signal.
 */
export function parseSignal(input: string | number): number | undefined {
  if (typeof input === "number") return Number.isInteger(input) && input >= 1 && input <= MAX_SIGNAL ? input : undefined;
  const text = input.trim().toUpperCase();
  if (/^\d+$/.test(text)) return parseSignal(Number(text));
  const name = text.startsWith("SIG") ? text : `SIG${text}`;
  const known = BY_NAME.get(name);
  if (known !== undefined) return known;
  const rt = /^SIGRTMIN(?:\+(\d+))?$/.exec(name);
  if (rt) return parseSignal(SIGRTMIN + Number(rt[1] ?? 0));
  const rtmax = /^SIGRTMAX(?:-(\d+))?$/.exec(name);
  if (rtmax) return parseSignal(MAX_SIGNAL - Number(rtmax[1] ?? 0));
  return undefined;
}

/** The `Reason` form: `RaisedSignal:11(Segmentation_fault)`, every space an underscore. */
export function signalReason(signal: number): string {
  return `RaisedSignal:${signal}(${signalDescription(signal).replace(/ /g, "_")})`;
}

/**
 * `muster run`'s live status line on a terminal: one line on stderr with the step's task counts
 * (pending/launching, running, exited, failed) and the elapsed time, redrawn in place and erased
 * at the end. Task output and muster's own messages never mix with it: the line is erased before
 * anything is written to the terminal and drawn again once the output stands at a line start.
 *
 * The counts come from the task events the agents already publish (`<p>.evt.<node>.<job>.<step>.<task>`,
 * kept in the EVENTS stream), read through an ordered consumer: the supervisor does no extra work and
 * no message is added to the protocol. Off a terminal, or with `-Q/--quiet`, nothing of this runs.
 */
import { isBadOutcome } from "../exit-status/index.js";
import { TaskEventSchema, parseMessage } from "../protocol/index.js";
import { formatElapsed } from "./render.js";
import type { Client } from "./client.js";

/** What the line needs to know about the terminal. */
export interface ProgressTerminal {
  /** stdout goes to the same terminal (task output then shares the screen with the line). */
  readonly stdoutIsTTY: boolean;
  /** Columns of the terminal, read at each draw (the line is cut to fit: a wrapped line cannot be erased). */
  readonly columns: () => number | undefined;
}

/** What the writers take: text, or bytes passed through untouched. */
type Chunk = string | Uint8Array;

/** Options of a status line; `stderr` must also take text (the line itself). */
export interface ProgressOptions<O extends Chunk = string, E extends Chunk = string> {
  readonly ntasks: number;
  readonly terminal: ProgressTerminal;
  readonly stdout: (s: O) => void;
  readonly stderr: (s: E) => void;
  /** Milliseconds after the start before the line first shows (quick steps never show it). Default 1000. */
  readonly delayMs?: number;
  /** Redraw period, ms. Default 1000 (the elapsed time ticks in seconds). */
  readonly intervalMs?: number;
  readonly now?: () => number;
}

/** Erase the current terminal line and return to its start. */
const ERASE = "\r\x1b[2K";

/** Task states the line counts, by rank. */
const PENDING = 0;
const RUNNING = 1;
const EXITED = 2;
const FAILED = 3;

/** A live status line; `stdout`/`stderr` are the writers everything else must go through while it runs. */
export class ProgressLine<O extends Chunk = string, E extends Chunk = string> {
  readonly stdout: (s: O) => void;
  readonly stderr: (s: E) => void;
  private readonly ranks: Uint8Array;
  private readonly counts = [0, 0, 0, 0];
  private readonly started: number;
  private readonly now: () => number;
  private shown = false;
  /** The terminal's cursor is at a line start as far as output written through this line knows. */
  private atLineStart = true;
  private job: string | undefined;
  private waiting = false;
  private stopped = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private redraw: NodeJS.Timeout | undefined;
  private follow: { stop(): void } | undefined;

  /** Writes the line's own text to stderr. */
  private readonly say: (s: string) => void;

  constructor(private readonly opts: ProgressOptions<O, E>) {
    this.say = opts.stderr as unknown as (s: string) => void;
    this.now = opts.now ?? Date.now;
    this.started = this.now();
    this.ranks = new Uint8Array(opts.ntasks);
    this.counts[PENDING] = opts.ntasks;
    // Output to a terminal shared with the line erases it first; stdout elsewhere (a file, a pipe) passes untouched.
    this.stderr = (s) => this.write(opts.stderr, s);
    this.stdout = opts.terminal.stdoutIsTTY ? (s) => this.write(opts.stdout, s) : opts.stdout;
    const first = setTimeout(() => {
      this.draw();
      const tick = setInterval(() => this.draw(), opts.intervalMs ?? 1000);
      tick.unref();
      this.timers.push(tick);
    }, opts.delayMs ?? 1000);
    first.unref();
    this.timers.push(first);
  }

  /** Names the job once it exists; `waiting` while it is PENDING for resources. */
  setJob(job: string, waiting: boolean): void {
    this.job = job;
    this.waiting = waiting;
  }

  /** Counts one task event of the step. */
  taskEvent(rank: number, ended: false | { ok: boolean }): void {
    if (rank < 0 || rank >= this.ranks.length) return;
    this.waiting = false;
    const was = this.ranks[rank]!;
    const next = ended === false ? RUNNING : ended.ok ? EXITED : FAILED;
    // Events may come twice (a retried publish) or out of order (an end before its start): never go back.
    if (was >= next) return;
    this.counts[was]!--;
    this.counts[next]!++;
    this.ranks[rank] = next;
  }

  /** Reads the step's task events from JetStream and counts them; without access to them the line shows the time only. */
  async followEvents(client: Client, job: string, step: number | string): Promise<void> {
    try {
      const f = await client.follow(client.subjects.streams.events.name, client.subjects.evt.ofJob(job), (m) => {
        const p = parseMessage(TaskEventSchema, m.data, m.subject);
        if (!p.ok || String(p.value.step) !== String(step)) return;
        const e = p.value;
        this.taskEvent(e.rank, e.type === "task.started" ? false : { ok: !isBadOutcome(e.outcome) });
      });
      if (this.stopped) f.stop();
      else this.follow = f;
    } catch {
      // No counts (e.g. NATS permissions deny the events stream): the line still shows the time.
    }
  }

  /** The text of the line. */
  text(): string {
    const c = this.counts;
    const elapsed = formatElapsed(this.now() - this.started);
    const n = this.ranks.length;
    const parts = [`${c[PENDING]} ${this.waiting ? "pending" : "launching"}`, `${c[RUNNING]} running`, `${c[EXITED]} exited`, `${c[FAILED]} failed`];
    return `muster: ${this.job ? `job ${this.job}: ` : ""}${n} ${n === 1 ? "task" : "tasks"}: ${parts.join(", ")}; ${elapsed}`;
  }

  /** Erases the line and stops drawing it. */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    if (this.redraw) clearTimeout(this.redraw);
    this.follow?.stop();
    this.erase();
  }

  private draw(): void {
    if (this.stopped || !this.atLineStart) return;
    const cols = this.opts.terminal.columns();
    let line = this.text();
    if (cols && line.length > cols - 1) line = line.slice(0, Math.max(0, cols - 1));
    this.say(`${ERASE}${line}`);
    this.shown = true;
  }

  private erase(): void {
    if (!this.shown) return;
    this.say(ERASE);
    this.shown = false;
  }

  private write<C extends Chunk>(to: (s: C) => void, s: C): void {
    if (s.length === 0) return;
    this.erase();
    to(s);
    this.atLineStart = typeof s === "string" ? s.endsWith("\n") : s[s.length - 1] === 0x0a;
    // Draw again shortly after the output stops, rather than after every chunk.
    if (!this.stopped && this.timers.length > 1 && !this.redraw) {
      this.redraw = setTimeout(() => {
        this.redraw = undefined;
        this.draw();
      }, 200);
      this.redraw.unref();
    }
  }
}

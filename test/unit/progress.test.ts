/**
 * `muster run`'s status line (src/cli/progress.ts) driven by hand: what it counts, and that what
 * reaches the terminal is the output untouched once the line's own bytes are taken out.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ProgressLine } from "../../src/cli/progress.js";

const ERASE = "\r\x1b[2K";

describe("ProgressLine", () => {
  let now: number;
  let screen: string;
  let file: string;
  beforeEach(() => {
    vi.useFakeTimers();
    now = 1_000_000;
    screen = "";
    file = "";
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const line = (stdoutIsTTY: boolean, columns?: number) =>
    new ProgressLine({
      ntasks: 4,
      terminal: { stdoutIsTTY, columns: () => columns },
      stdout: (s) => (stdoutIsTTY ? (screen += s) : (file += s)),
      stderr: (s) => (screen += s),
      now: () => now,
    });

  it("counts each rank once, never backwards, and ignores ranks out of range", () => {
    const p = line(true);
    p.setJob("7", false);
    p.taskEvent(0, false);
    p.taskEvent(1, false);
    p.taskEvent(1, false); // a retried publish
    p.taskEvent(2, { ok: false }); // an end before its start
    p.taskEvent(2, false);
    p.taskEvent(0, { ok: true });
    p.taskEvent(9, false);
    now += 75_000;
    expect(p.text()).toBe("muster: job 7: 4 tasks: 1 launching, 1 running, 1 exited, 1 failed; 00:01:15");
    p.stop();
  });

  it("says pending while the job waits for slots, until a task starts", () => {
    const p = line(true);
    p.setJob("8", true);
    expect(p.text()).toContain("4 pending, 0 running");
    p.taskEvent(3, false);
    expect(p.text()).toContain("3 launching, 1 running");
    p.stop();
  });

  it("shows after the delay, is erased before output, redrawn only at a line start, and erased at the end", () => {
    const p = line(true);
    p.setJob("9", false);
    p.stdout("early\n");
    expect(screen).toBe("early\n"); // nothing drawn before the first second
    vi.advanceTimersByTime(1000);
    expect(screen).toBe(`early\n${ERASE}${p.text()}`);
    p.stdout("partial");
    vi.advanceTimersByTime(5000);
    // While a line of output is unfinished the status is not drawn (erasing would take the output with it).
    expect(screen.endsWith(`${ERASE}partial`)).toBe(true);
    p.stdout(" line\n");
    p.stderr("muster: a message\n");
    vi.advanceTimersByTime(200);
    p.stop();
    const visible = screen.replaceAll(`${ERASE}${p.text()}`, "").replaceAll(ERASE, "");
    expect(visible).toBe("early\npartial line\nmuster: a message\n");
    expect(screen.endsWith(ERASE)).toBe(true);
    // Stopped: nothing more is drawn.
    const at = screen.length;
    vi.advanceTimersByTime(5000);
    expect(screen.length).toBe(at);
  });

  it("leaves stdout untouched when it is not the terminal, and cuts the line to the terminal's width", () => {
    const p = line(false, 30);
    p.setJob("10", false);
    vi.advanceTimersByTime(1000);
    p.stdout("to a file\n");
    expect(file).toBe("to a file\n");
    expect(screen).toBe(`${ERASE}${p.text().slice(0, 29)}`);
    p.stop();
    expect(screen.endsWith(ERASE)).toBe(true);
  });

  it("passes bytes through untouched and knows a line start by its last byte", () => {
    const chunks: (string | Uint8Array)[] = [];
    const p = new ProgressLine<Uint8Array | string, string>({
      ntasks: 2,
      terminal: { stdoutIsTTY: true, columns: () => undefined },
      stdout: (s) => chunks.push(s),
      stderr: (s) => chunks.push(s),
      now: () => now,
    });
    vi.advanceTimersByTime(1000);
    const bytes = Uint8Array.from([0xff, 0x00, 0x41]);
    p.stdout(bytes);
    vi.advanceTimersByTime(3000);
    // No newline yet: erased once before the bytes, not drawn again.
    expect(chunks.slice(1)).toEqual([ERASE, bytes]);
    p.stdout(Uint8Array.from([0x0a]));
    vi.advanceTimersByTime(200);
    expect(String(chunks.at(-1)).startsWith(`${ERASE}muster: 2 tasks: 2 launching`)).toBe(true);
    expect(chunks).toContain(bytes);
    p.stop();
  });
});

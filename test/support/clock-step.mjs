// Preload (node --import) that lets a test step this process's wall clock while it runs: each
// SIGUSR2 moves Date.now() and `new Date()` by MUSTER_TEST_CLOCK_STEP_MS (default +60000), as an
// NTP step or an operator's `date -s` would. The monotonic clock (performance.now) does not move.
import process from "node:process";

const step = Number(process.env.MUSTER_TEST_CLOCK_STEP_MS ?? 60_000);
const RealDate = globalThis.Date;
const realNow = RealDate.now.bind(RealDate);
let offset = 0;

class SteppedDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(realNow() + offset);
    else super(...args);
  }
  static now() {
    return realNow() + offset;
  }
}
globalThis.Date = SteppedDate;

process.on("SIGUSR2", () => {
  offset += step;
  process.stderr.write(`clock-step: wall clock stepped by ${step} ms (offset ${offset} ms)\n`);
});

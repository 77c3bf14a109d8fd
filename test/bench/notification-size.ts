/**
 * Size of a first-failure notification as the supervisor builds it (the exit-status module's
 * `groupTasks`, the same call `stepPicture` makes), for steps whose tasks end in rank order or in a
 * random order, with the first failure when half of the tasks have ended. No NATS needed.
 *
 *   node --import tsx test/bench/notification-size.ts [NTASKS...]
 */
import { groupTasks } from "../../src/exit-status/index.js";
import { MAX_PAYLOAD_BYTES } from "../../src/protocol/index.js";

const sizes = process.argv.slice(2).map(Number).filter((n) => n > 1);
for (const n of sizes.length ? sizes : [10_000, 100_000, 250_000, 1_000_000]) {
  for (const order of ["rank", "random"] as const) {
    const ranks = Array.from({ length: n }, (_, i) => i);
    let seed = 12345;
    if (order === "random") {
      for (let i = n - 1; i > 0; i--) {
        seed = (seed * 1664525 + 1013904223) >>> 0;
        const j = seed % (i + 1);
        [ranks[i], ranks[j]] = [ranks[j]!, ranks[i]!];
      }
    }
    const half = Math.floor(n / 2);
    const failed = ranks[half - 1]!;
    const ended = new Set(ranks.slice(0, half));
    const perNode = Math.ceil(n / 4);
    const picture = groupTasks(
      (function* () {
        for (let r = 0; r < n; r++) {
          yield { rank: r, node: `node-${1 + Math.floor(r / perNode)}`, key: r === failed ? "exited:1" : ended.has(r) ? "exited:0" : "running", killedByRuntime: false };
        }
      })(),
    );
    const msg = {
      type: "step.first_failure",
      v: 1,
      job: "1",
      step: 0,
      trigger: { rank: failed, node: "node-1", outcome: { kind: "exited", code: 1 }, at: Date.now() },
      publishedAt: Date.now(),
      ntasks: n,
      ...picture,
    };
    const bytes = Buffer.byteLength(JSON.stringify(msg));
    const verdict = bytes > MAX_PAYLOAD_BYTES ? "  exceeds the 1 MiB payload limit" : bytes >= 64 * 1024 ? "  over 64 KiB" : "";
    process.stdout.write(`${String(n).padStart(9)} tasks, exits in ${order.padEnd(6)} order: ${String(bytes).padStart(9)} bytes (${(bytes / n).toFixed(2)} B/task)${verdict}\n`);
  }
}

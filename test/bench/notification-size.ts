/**
 * Size of a first-failure notification as the supervisor builds it (the exit-status module's
 * `groupTasks`, the same call `stepPicture` makes, then the protocol's `encodeTaskPicture`), for
 * steps whose tasks end in rank order or in a random order, with the first failure when half of the
 * tasks have ended. Prints both forms of the task picture: id sets (`groups`, what every step sent
 * before the packed form existed) and packed, and which one is sent. No NATS needed.
 *
 *   node --import tsx test/bench/notification-size.ts [NTASKS...]
 */
import { groupTasks } from "../../src/exit-status/index.js";
import { MAX_PAYLOAD_BYTES, encodeTaskPicture, packTaskStatus } from "../../src/protocol/index.js";

const sizes = process.argv.slice(2).map(Number).filter((n) => n > 1);
const size = (msg: object): number => Buffer.byteLength(JSON.stringify(msg));
const verdict = (bytes: number): string => (bytes > MAX_PAYLOAD_BYTES ? " (over 1 MiB)" : bytes >= 64 * 1024 ? " (over 64 KiB)" : "");
const human = (bytes: number): string => (bytes < 10_240 ? `${bytes} B` : bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(2)} MiB`);

process.stdout.write(`${"tasks".padStart(9)}  ${"order".padEnd(6)}  ${"id sets".padStart(22)}  ${"packed".padStart(22)}  sent\n`);
for (const n of sizes.length ? sizes : [10_000, 100_000, 250_000, 1_000_000]) {
  for (const order of ["rank", "random"] as const) {
    const ranks = Array.from({ length: n }, (_, i) => i);
    if (order === "random") {
      // Fisher-Yates with mulberry32: the low bits of a plain LCG repeat, which deflate would exploit.
      let a = 12345;
      const rand = (): number => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = Math.imul(a ^ (a >>> 15), a | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
      };
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
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
    const head = {
      type: "step.first_failure",
      v: 1,
      job: "1",
      step: 0,
      trigger: { rank: failed, node: "node-1", outcome: { kind: "exited", code: 1 }, at: Date.now() },
      publishedAt: Date.now(),
      ntasks: n,
    };
    const idSets = size({ ...head, groups: picture.groups, killedByRuntime: picture.killedByRuntime, nodes: picture.nodes });
    const t0 = performance.now();
    const packed = size({ ...head, packed: packTaskStatus(picture, n), nodes: picture.nodes });
    const packMs = performance.now() - t0;
    const wire = encodeTaskPicture(picture, n);
    const sent = "packed" in wire ? "packed" : "counts" in wire ? "counts" : "id sets";
    const cell = (bytes: number) => `${human(bytes)}${verdict(bytes)}`.padStart(22);
    process.stdout.write(
      `${String(n).padStart(9)}  ${order.padEnd(6)}  ${cell(idSets)}  ${cell(packed)}  ${sent} (${(size({ ...head, ...wire }) / n).toFixed(3)} B/task; packing took ${packMs.toFixed(0)} ms)\n`,
    );
  }
}

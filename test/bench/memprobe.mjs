// Preloaded into the supervisor by the benchmark (node --expose-gc --import ./memprobe.mjs):
// on SIGUSR2 it collects garbage (when gc is exposed) and writes process.memoryUsage() as JSON to
// $MUSTER_BENCH_MEMFILE. It changes nothing else in the process.
import { writeFileSync } from "node:fs";
import process from "node:process";
import { performance } from "node:perf_hooks";

const file = process.env.MUSTER_BENCH_MEMFILE;
if (file) {
  process.on("SIGUSR2", () => {
    const t0 = performance.now();
    if (typeof globalThis.gc === "function") {
      globalThis.gc();
      globalThis.gc();
    }
    const m = process.memoryUsage();
    writeFileSync(file, JSON.stringify({ ...m, gcMs: performance.now() - t0, at: Date.now() }));
  });
}

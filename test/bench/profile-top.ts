/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, or `npm run bench -- --profile DIR`): the
 * functions with the most self time, and self time grouped by package or project file.
 *
 *   node --import tsx test/bench/profile-top.ts FILE.cpuprofile [--top N] [--inclusive]
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

process.stdout.on("error", () => process.exit(0)); // a closed pipe (| head) ends the listing
const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: "string", default: "25" }, inclusive: { type: "boolean", default: false } } });
const top = Number(values.top);

for (const file of positionals) {
  const p = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Self time per node from the sample timeline (µs).
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i + 1] ?? 0));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const where = (cf: CallFrame) => {
    const u = cf.url.replace(/^file:\/\//, "");
    const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
    if (nm) return nm[1]!;
    const proj = /\/(dist\/)?((?:src|machines|services)\/.*)$/.exec(u);
    if (proj) return proj[2]!;
    if (u.startsWith("node:")) return u;
    return u || "(native/vm)";
  };
  const label = (cf: CallFrame) => `${cf.functionName || "(anonymous)"} ${where(cf)}:${cf.lineNumber + 1}`;
  const fnSelf = new Map<string, number>();
  const pkgSelf = new Map<string, number>();
  const fnIncl = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    fnSelf.set(label(n.callFrame), (fnSelf.get(label(n.callFrame)) ?? 0) + us);
    const cf = n.callFrame;
    const w = ["(idle)", "(program)", "(garbage collector)"].includes(cf.functionName) ? cf.functionName : where(cf);
    pkgSelf.set(w, (pkgSelf.get(w) ?? 0) + us);
    if (values.inclusive) {
      const seen = new Set<string>();
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const l = label(byId.get(cur)!.callFrame);
        if (seen.has(l)) continue;
        seen.add(l);
        fnIncl.set(l, (fnIncl.get(l) ?? 0) + us);
      }
    }
  }
  const idle = pkgSelf.get("(idle)") ?? 0;
  const busy = total - idle;
  const pct = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms`;
  process.stdout.write(`\n${file}: ${(total / 1e6).toFixed(1)} s profiled, ${(busy / 1e6).toFixed(2)} s busy (percentages of busy time)\n`);
  process.stdout.write("\nself time by package / project file:\n");
  for (const [k, v] of [...pkgSelf].filter(([k]) => k !== "(idle)").sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${ms(v)} ${pct(v)}  ${k}\n`);
  process.stdout.write("\nself time by function:\n");
  for (const [k, v] of [...fnSelf].filter(([k]) => !k.startsWith("(idle)")).sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${ms(v)} ${pct(v)}  ${k}\n`);
  if (values.inclusive) {
    process.stdout.write("\ninclusive time by function:\n");
    for (const [k, v] of [...fnIncl].filter(([k]) => !k.startsWith("(idle)") && !k.startsWith("(root)")).sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${ms(v)} ${pct(v)}  ${k}\n`);
  }
}

/**
 * Slurm's hostlist form of node names (`node-[1-3,7]`, `n[01-04],login1`) and its compressed
 * per-node counts (`2(x3),1`): what Slurm's variables (SLURM_JOB_NODELIST, SLURM_TASKS_PER_NODE)
 * and `-w/--nodelist` use. Pure helpers.
 */
import { MusterError } from "./errors.js";

/** The most names one hostlist may expand to (a guard against `n[1-999999999]`). */
export const MAX_HOSTLIST_NAMES = 100_000;

/**
 * Compresses node names into Slurm's hostlist form: consecutive runs of names that share a prefix
 * and a numeric suffix of the same width become `prefix[a-b,c]`; the names' order is kept
 * (`n1,n2,n3,m1` → `n[1-3],m1`), as Slurm prints an allocation's nodes in order.
 */
export function compressHostlist(names: readonly string[]): string {
  const parts: string[] = [];
  let i = 0;
  while (i < names.length) {
    const first = split(names[i]!);
    if (!first) {
      parts.push(names[i]!);
      i++;
      continue;
    }
    // Take the names that follow with the same prefix and digit width.
    const nums: string[] = [first.digits];
    let j = i + 1;
    for (; j < names.length; j++) {
      const s = split(names[j]!);
      if (!s || s.prefix !== first.prefix || !sameWidth(s.digits, first.digits)) break;
      nums.push(s.digits);
    }
    if (nums.length === 1) parts.push(names[i]!);
    else parts.push(`${first.prefix}[${ranges(nums)}]`);
    i = j;
  }
  return parts.join(",");
}

/** Expands a hostlist (`n[1-3,5],login1`) into node names, in order, without duplicates; throws USAGE on a malformed list. */
export function expandHostlist(text: string): string[] {
  const bad = (why: string) => new MusterError("USAGE", `bad node list "${text}": ${why}`);
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (name: string) => {
    if (!/^[A-Za-z0-9_-]+$/.test(name)) throw bad(`"${name}" is not a node name`);
    if (seen.has(name)) return;
    if (out.length >= MAX_HOSTLIST_NAMES) throw bad(`more than ${MAX_HOSTLIST_NAMES} names`);
    seen.add(name);
    out.push(name);
  };
  // Split at commas outside brackets.
  const items: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of text.trim()) {
    if (ch === "[") depth++;
    if (ch === "]") depth--;
    if (depth < 0 || depth > 1) throw bad("unbalanced brackets");
    if (ch === "," && depth === 0) {
      items.push(cur);
      cur = "";
    } else cur += ch;
  }
  if (depth !== 0) throw bad("unbalanced brackets");
  items.push(cur);
  for (const item of items) {
    if (item === "") throw bad("empty name");
    const m = /^([^[\]]*)\[([^\]]*)\]([^[\]]*)$/.exec(item);
    if (!m) {
      if (/[[\]]/.test(item)) throw bad(`cannot read "${item}"`);
      add(item);
      continue;
    }
    const [, prefix, body, suffix] = m;
    for (const r of body!.split(",")) {
      const rm = /^(\d+)(?:-(\d+))?$/.exec(r);
      if (!rm) throw bad(`"${r}" is not a number or a range`);
      const lo = Number(rm[1]);
      const hi = rm[2] === undefined ? lo : Number(rm[2]);
      if (hi < lo) throw bad(`range ${r} runs backwards`);
      if (hi - lo >= MAX_HOSTLIST_NAMES) throw bad(`more than ${MAX_HOSTLIST_NAMES} names`);
      const width = rm[1]!.length;
      for (let n = lo; n <= hi; n++) add(`${prefix}${String(n).padStart(width, "0")}${suffix}`);
    }
  }
  return out;
}

/** Slurm's compressed per-node counts: `[2,2,2,1]` → `2(x3),1` (SLURM_TASKS_PER_NODE). */
export function compressCounts(counts: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < counts.length; ) {
    let j = i + 1;
    while (j < counts.length && counts[j] === counts[i]) j++;
    parts.push(j - i === 1 ? String(counts[i]) : `${counts[i]}(x${j - i})`);
    i = j;
  }
  return parts.join(",");
}

function split(name: string): { prefix: string; digits: string } | undefined {
  const m = /^(.*?)(\d+)$/.exec(name);
  return m ? { prefix: m[1]!, digits: m[2]! } : undefined;
}

// Zero-padded suffixes group only with the same width (`n01`, `n02`); unpadded ones with any unpadded one.
function sameWidth(a: string, b: string): boolean {
  const padded = (s: string) => s.length > 1 && s.startsWith("0");
  if (padded(a) || padded(b)) return a.length === b.length;
  return true;
}

function ranges(nums: readonly string[]): string {
  const out: string[] = [];
  let i = 0;
  while (i < nums.length) {
    let j = i;
    while (j + 1 < nums.length && Number(nums[j + 1]) === Number(nums[j]) + 1) j++;
    out.push(i === j ? nums[i]! : `${nums[i]}-${nums[j]}`);
    i = j + 1;
  }
  return out.join(",");
}

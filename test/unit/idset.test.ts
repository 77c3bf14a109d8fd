import { describe, expect, it } from "vitest";
import { IdSet, IdSetBuilder, formatIdSet, parseIdSet } from "../../src/idset/index.js";
import { prng } from "./machines/helpers.js";


/** A random set over 0..universe-1 made of runs, so ranges, single ids and gaps of every size occur. */
function randomIds(rand: () => number, universe: number): Set<number> {
  const out = new Set<number>();
  const density = rand();
  let i = Math.floor(rand() * 4);
  while (i < universe) {
    if (rand() < density) {
      const run = 1 + Math.floor(rand() * 6);
      for (let k = 0; k < run && i < universe; k++) out.add(i++);
    }
    i += 1 + Math.floor(rand() * 5);
  }
  return out;
}

/** The obvious formatter the class is checked against. */
function naiveFormat(ids: Iterable<number>): string {
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  const parts: string[] = [];
  let i = 0;
  while (i < sorted.length) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

function shuffled<T>(ids: Iterable<T>, rand: () => number): T[] {
  const a = [...ids];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

describe("IdSet parse and format", () => {
  it.each([
    ["0-3,7", "0-3,7"],
    ["7,0-3", "0-3,7"],
    ["0,1,2,3", "0-3"],
    ["4,5", "4-5"],
    ["4-5", "4-5"],
    ["3,1,2,1,3", "1-3"],
    ["0-3,4-7", "0-7"],
    ["0-5,3-9", "0-9"],
    ["2-4,0-10,12", "0-10,12"],
    ["5-5", "5"],
    [" 1 - 3 , 5 ", "1-3,5"],
    ["", ""],
    ["  ", ""],
  ])("parses %j and formats it as %j", (text, formatted) => {
    const set = IdSet.parse(text);
    expect(set.toString()).toBe(formatted);
    expect(IdSet.parse(set.toString()).toString()).toBe(formatted);
    expect(JSON.stringify({ ids: set })).toBe(JSON.stringify({ ids: formatted }));
  });

  it("writes every run of two or more ids as a range", () => {
    expect(formatIdSet([4, 5])).toBe("4-5");
    expect(formatIdSet([9, 4, 5, 6, 11, 10, 0])).toBe("0,4-6,9-11");
    expect(IdSet.range(4, 5).toString()).toBe("4-5");
  });

  it("treats the empty set as the empty string", () => {
    expect(IdSet.EMPTY.toString()).toBe("");
    expect(IdSet.EMPTY.size).toBe(0);
    expect(IdSet.EMPTY.isEmpty).toBe(true);
    expect(IdSet.EMPTY.min).toBeUndefined();
    expect(IdSet.EMPTY.has(0)).toBe(false);
    expect(IdSet.of([]).equals(IdSet.EMPTY)).toBe(true);
    expect(IdSet.fromSorted([]).toString()).toBe("");
    expect(new IdSetBuilder().build().toString()).toBe("");
    expect(IdSet.range(5, 4).isEmpty).toBe(true);
    expect(parseIdSet("").isEmpty).toBe(true);
  });

  it("answers membership exactly at the edges of each range", () => {
    const set = parseIdSet("0,2-4,10-19,1000");
    const inside = [0, 2, 3, 4, 10, 11, 18, 19, 1000];
    const outside = [1, 5, 9, 20, 999, 1001, 1_000_000];
    for (const id of inside) expect(set.has(id), `has(${id})`).toBe(true);
    for (const id of outside) expect(set.has(id), `has(${id})`).toBe(false);
    expect(set.size).toBe(1 + 3 + 10 + 1);
    expect(set.min).toBe(0);
    expect([...set]).toEqual([0, 2, 3, 4, ...Array.from({ length: 10 }, (_, i) => 10 + i), 1000]);
  });

  it.each([
    ["3-1", 'bad id range "3-1" in "3-1": end before start'],
    ["a", 'bad id set part "a" in "a"'],
    ["-1", 'bad id set part "-1" in "-1"'],
    ["1,,2", 'bad id set part "" in "1,,2"'],
    ["1,", 'bad id set part "" in "1,"'],
    ["1-2-3", 'bad id set part "1-2-3" in "1-2-3"'],
    ["1.5", 'bad id set part "1.5" in "1.5"'],
    ["99999999999999999999", "bad id 100000000000000000000: ids are non-negative integers"],
  ])("rejects %j with a RangeError naming the bad part", (text, message) => {
    expect(() => IdSet.parse(text)).toThrow(RangeError);
    expect(() => IdSet.parse(text)).toThrow(message);
    expect(() => parseIdSet(text)).toThrow(message);
  });

  it("rejects bad ids given as numbers, whichever way the set is built", () => {
    expect(() => IdSet.of([1, -1])).toThrow("bad id -1: ids are non-negative integers");
    expect(() => IdSet.of([1.5])).toThrow("bad id 1.5: ids are non-negative integers");
    expect(() => IdSet.range(-1, 3)).toThrow("bad id -1: ids are non-negative integers");
    expect(() => IdSet.fromSorted([-1, 0, 1])).toThrow("bad id -1: ids are non-negative integers");
    expect(() => IdSet.fromSorted([2.5])).toThrow("bad id 2.5: ids are non-negative integers");
    expect(() => new IdSetBuilder().add(-1).add(0).build()).toThrow("bad id -1: ids are non-negative integers");
    expect(() => IdSet.fromSorted([1, 3, 2])).toThrow("ids are not sorted at index 2: 2 after 3");
  });
});

describe("IdSet algebra against a naive Set", () => {
  const rand = prng(0x5eed);
  const cases = Array.from({ length: 400 }, (_, i) => {
    const universe = [8, 40, 200][i % 3]!;
    return [randomIds(rand, universe), randomIds(rand, universe)] as const;
  });

  it("builds, formats and round-trips any set, however it is given", () => {
    for (const [a] of cases) {
      const expected = naiveFormat(a);
      const sorted = [...a].sort((x, y) => x - y);
      const builder = new IdSetBuilder();
      for (const id of shuffled([...a, ...a], rand)) builder.add(id);
      expect(IdSet.of(shuffled(a, rand)).toString()).toBe(expected);
      expect(IdSet.fromSorted(sorted).toString()).toBe(expected);
      expect(builder.build().toString()).toBe(expected);
      expect(IdSet.parse(expected).toString()).toBe(expected);
      expect(IdSet.parse(shuffled(sorted.map(String), rand).join(",")).toString()).toBe(expected);
      expect(IdSet.parse(expected).size).toBe(a.size);
      expect([...IdSet.parse(expected)]).toEqual(sorted);
    }
  });

  it("computes union, intersection, difference and membership like Set does", () => {
    for (const [a, b] of cases) {
      const sa = IdSet.of(a);
      const sb = IdSet.of(b);
      const union = new Set([...a, ...b]);
      const inter = new Set([...a].filter((x) => b.has(x)));
      const diff = new Set([...a].filter((x) => !b.has(x)));
      expect(sa.union(sb).toString()).toBe(naiveFormat(union));
      expect(sa.intersect(sb).toString()).toBe(naiveFormat(inter));
      expect(sa.difference(sb).toString()).toBe(naiveFormat(diff));
      expect(sb.difference(sa).toString()).toBe(naiveFormat([...b].filter((x) => !a.has(x))));
      expect(sa.union(sb).equals(sb.union(sa))).toBe(true);
      expect(sa.intersect(sb).equals(sb.intersect(sa))).toBe(true);
      expect(sa.difference(sb).union(sa.intersect(sb)).equals(sa)).toBe(true);
      expect(sa.union(sb).size).toBe(union.size);
      const wrong = Array.from({ length: 202 }, (_, id) => id).filter((id) => sa.has(id) !== a.has(id));
      expect(wrong).toEqual([]);
    }
  });

  it("handles the empty set on either side", () => {
    const s = parseIdSet("1-3,9");
    expect(s.union(IdSet.EMPTY).toString()).toBe("1-3,9");
    expect(IdSet.EMPTY.union(s).toString()).toBe("1-3,9");
    expect(s.intersect(IdSet.EMPTY).toString()).toBe("");
    expect(s.difference(IdSet.EMPTY).toString()).toBe("1-3,9");
    expect(IdSet.EMPTY.difference(s).toString()).toBe("");
    expect(s.difference(s).toString()).toBe("");
  });

  it("merges adjacent and overlapping ranges in a union", () => {
    expect(parseIdSet("0-3").union(parseIdSet("4-7")).toString()).toBe("0-7");
    expect(parseIdSet("0-5").union(parseIdSet("3-9")).toString()).toBe("0-9");
    expect(parseIdSet("0,2,4").union(parseIdSet("1,3")).toString()).toBe("0-4");
    expect(parseIdSet("0-1,5").union(parseIdSet("3")).toString()).toBe("0-1,3,5");
  });
});

describe("IdSet at a million ranks", () => {
  const size = 1_000_000;
  const gaps = new Set([17, 500_000, 999_998]);
  const expected = "0-16,18-499999,500001-999997,999999";

  it("formats 0..999999 with three gaps via IdSetBuilder and via fromSorted", () => {
    const t0 = performance.now();
    const builder = new IdSetBuilder();
    for (let i = 0; i < size; i++) if (!gaps.has(i)) builder.add(i);
    const viaBuilder = builder.build().toString();
    const t1 = performance.now();
    const sorted = new Uint32Array(size - gaps.size);
    let n = 0;
    for (let i = 0; i < size; i++) if (!gaps.has(i)) sorted[n++] = i;
    const fromSorted = IdSet.fromSorted(sorted);
    const viaSorted = fromSorted.toString();
    const t2 = performance.now();

    console.log(
      `idset: 1,000,000 ranks with 3 gaps formatted via IdSetBuilder in ${(t1 - t0).toFixed(1)} ms, ` +
        `via IdSet.fromSorted in ${(t2 - t1).toFixed(1)} ms`,
    );
    expect(viaBuilder).toBe(expected);
    expect(viaSorted).toBe(expected);
    expect(fromSorted.size).toBe(size - 3);
    expect(fromSorted.has(17)).toBe(false);
    expect(fromSorted.has(16)).toBe(true);
    expect(fromSorted.has(999_999)).toBe(true);
    expect(IdSet.parse(expected).equals(fromSorted)).toBe(true);
  });

  it("formats a million ranks added in reverse order", () => {
    const builder = new IdSetBuilder();
    for (let i = size - 1; i >= 0; i--) if (!gaps.has(i)) builder.add(i);
    expect(builder.build().toString()).toBe(expected);
  });
});

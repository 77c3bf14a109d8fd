/**
 * Id sets: sets of non-negative integers (task ranks) written as ranges, `0-3,7`.
 * They keep a notification about a million-task step small, and they are how every surface prints ranks.
 */

/** A sorted list of disjoint, non-adjacent inclusive ranges `[lo, hi]`. */
export type IdRanges = ReadonlyArray<readonly [number, number]>;

/** An immutable set of ranks held as ranges; cheap for dense sets of any size. */
export class IdSet {
  private constructor(readonly ranges: IdRanges) {}

  /** Sorts and merges overlapping or adjacent ranges. */
  private static normalize(parts: [number, number][]): IdSet {
    parts.sort((a, b) => a[0] - b[0]);
    const out: [number, number][] = [];
    for (const [lo, hi] of parts) {
      const last = out[out.length - 1];
      if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
      else out.push([lo, hi]);
    }
    return new IdSet(out);
  }

  /** The empty set. */
  static readonly EMPTY = new IdSet([]);

  /** Builds a set from any list of ranks (unsorted, with duplicates). */
  static of(ids: Iterable<number>): IdSet {
    const sorted = Array.from(ids, checkId).sort((a, b) => a - b);
    return IdSet.fromSorted(sorted);
  }

  /** Builds a set from ranks already sorted ascending (duplicates allowed); O(n). Throws a RangeError on a bad id. */
  static fromSorted(sorted: ArrayLike<number>): IdSet {
    const ranges: [number, number][] = [];
    let lo = -2;
    let hi = -2;
    for (let i = 0; i < sorted.length; i++) {
      const id = checkId(sorted[i]!);
      if (id === hi || id === hi + 1) {
        hi = id;
        continue;
      }
      if (id < hi) throw new RangeError(`ids are not sorted at index ${i}: ${id} after ${hi}`);
      if (hi >= 0) ranges.push([lo, hi]);
      lo = hi = id;
    }
    if (hi >= 0) ranges.push([lo, hi]);
    return new IdSet(ranges);
  }

  /** The set `lo..hi` inclusive. */
  static range(lo: number, hi: number): IdSet {
    checkId(lo);
    checkId(hi);
    return hi < lo ? IdSet.EMPTY : new IdSet([[lo, hi]]);
  }

  /** Parses `0-3,7`; the empty string is the empty set. Throws a RangeError naming the bad part. */
  static parse(text: string): IdSet {
    const trimmed = text.trim();
    if (trimmed === "") return IdSet.EMPTY;
    const parts: [number, number][] = [];
    for (const part of trimmed.split(",")) {
      const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
      if (!m) throw new RangeError(`bad id set part "${part}" in "${text}"`);
      const lo = checkId(Number(m[1]));
      const hi = m[2] === undefined ? lo : checkId(Number(m[2]));
      if (hi < lo) throw new RangeError(`bad id range "${part}" in "${text}": end before start`);
      parts.push([lo, hi]);
    }
    return IdSet.normalize(parts);
  }

  /** Number of ids in the set. */
  get size(): number {
    let n = 0;
    for (const [lo, hi] of this.ranges) n += hi - lo + 1;
    return n;
  }

  /** True when the set holds no id. */
  get isEmpty(): boolean {
    return this.ranges.length === 0;
  }

  /** Smallest id, or undefined when empty. */
  get min(): number | undefined {
    return this.ranges[0]?.[0];
  }

  /** True when `id` is in the set; O(log ranges). */
  has(id: number): boolean {
    let a = 0;
    let b = this.ranges.length - 1;
    while (a <= b) {
      const mid = (a + b) >> 1;
      const [lo, hi] = this.ranges[mid]!;
      if (id < lo) b = mid - 1;
      else if (id > hi) a = mid + 1;
      else return true;
    }
    return false;
  }

  /** The union of two sets. */
  union(other: IdSet): IdSet {
    if (other.isEmpty) return this;
    if (this.isEmpty) return other;
    return IdSet.normalize([...this.ranges, ...other.ranges].map(([lo, hi]) => [lo, hi] as [number, number]));
  }

  /** The ids in both sets; O(ranges of both). */
  intersect(other: IdSet): IdSet {
    const out: [number, number][] = [];
    let i = 0;
    let j = 0;
    while (i < this.ranges.length && j < other.ranges.length) {
      const [alo, ahi] = this.ranges[i]!;
      const [blo, bhi] = other.ranges[j]!;
      const lo = Math.max(alo, blo);
      const hi = Math.min(ahi, bhi);
      if (lo <= hi) out.push([lo, hi]);
      if (ahi < bhi) i++;
      else j++;
    }
    return new IdSet(out);
  }

  /** The ids of this set that are not in `other`. */
  difference(other: IdSet): IdSet {
    const out: [number, number][] = [];
    let j = 0;
    for (const [alo, ahi] of this.ranges) {
      let lo = alo;
      while (j < other.ranges.length && other.ranges[j]![1] < lo) j++;
      let k = j;
      while (lo <= ahi && k < other.ranges.length && other.ranges[k]![0] <= ahi) {
        const [blo, bhi] = other.ranges[k]!;
        if (blo > lo) out.push([lo, blo - 1]);
        lo = Math.max(lo, bhi + 1);
        k++;
      }
      if (lo <= ahi) out.push([lo, ahi]);
    }
    return new IdSet(out);
  }

  /** The ids in ascending order. */
  *[Symbol.iterator](): IterableIterator<number> {
    for (const [lo, hi] of this.ranges) for (let i = lo; i <= hi; i++) yield i;
  }

  /** Equality of content. */
  equals(other: IdSet): boolean {
    return this.toString() === other.toString();
  }

  /** `0-3,7`: every run of two or more ids is a range (`4-5`), as Slurm writes host lists. */
  toString(): string {
    let out = "";
    for (let i = 0; i < this.ranges.length; i++) {
      const [lo, hi] = this.ranges[i]!;
      if (i > 0) out += ",";
      out += lo === hi ? String(lo) : `${lo}-${hi}`;
    }
    return out;
  }

  /** JSON form is the range string. */
  toJSON(): string {
    return this.toString();
  }
}

/** Builds id sets incrementally from ranks added in any order; cheap when they arrive ascending. */
export class IdSetBuilder {
  private ids: number[] = [];
  private sorted = true;
  private last = -1;

  /** Adds one rank. */
  add(id: number): this {
    if (id < this.last) this.sorted = false;
    this.last = id;
    this.ids.push(id);
    return this;
  }

  /** Number of ranks added (duplicates counted). */
  get count(): number {
    return this.ids.length;
  }

  /** The set of everything added. */
  build(): IdSet {
    if (!this.sorted) this.ids.sort((a, b) => a - b);
    return IdSet.fromSorted(this.ids);
  }
}

/** Formats ranks as a range string (`0-3,7`). */
export function formatIdSet(ids: Iterable<number>): string {
  return IdSet.of(ids).toString();
}

/** Parses a range string into an IdSet. */
export function parseIdSet(text: string): IdSet {
  return IdSet.parse(text);
}

function checkId(id: number): number {
  if (!Number.isSafeInteger(id) || id < 0) throw new RangeError(`bad id ${id}: ids are non-negative integers`);
  return id;
}

/**
 * A small layered layout for state charts, enough for machines of a dozen states: live states in
 * columns by breadth-first depth from the initial state, final states in a last column, edges
 * spanning several columns routed through virtual points, rows ordered by barycentre sweeps to cut
 * crossings, and labels nudged apart. No browser, no Graphviz.
 */
import { chartEdges, leafStates, type ChartModel, type ChartState } from "./model.js";

/** A point. */
export interface Point {
  readonly x: number;
  readonly y: number;
}

/** A box: top-left corner and size. */
export interface Box {
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

/** A placed state. */
export interface PlacedState {
  readonly state: ChartState;
  readonly box: Box;
  readonly layer: number;
  /** Labels shared by every edge coming in with that label, drawn once above the state. */
  readonly via: readonly string[];
  /** Room kept above the state for a self-loop (0 without one); via labels go above it. */
  readonly loopSpace: number;
}

/** A placed edge: an SVG path (`d`), its label lines and where the label sits. */
export interface PlacedEdge {
  readonly source: string;
  readonly target: string;
  readonly d: string;
  readonly labels: readonly string[];
  /** Centre of the label block, when there are labels. */
  readonly labelAt?: Point;
  readonly labelBox?: Box;
}

/** The whole layout: everything lies in the box from `origin` of size `width` × `height`. */
export interface ChartLayout {
  readonly width: number;
  readonly height: number;
  readonly states: readonly PlacedState[];
  readonly edges: readonly PlacedEdge[];
  /** The initial pseudo-state (a dot) and the arrow from it. */
  readonly initial: { readonly at: Point; readonly d: string };
  /** Top-left corner of the drawing, margin included. */
  readonly origin: Point;
}

/** Font metrics the layout assumes (sans-serif); generous so text never overflows its box. */
export const FONT = { state: 13, label: 11, charState: 7.6, charLabel: 6.4, line: 13 } as const;

const NODE_H = 36;
const NODE_MIN_W = 92;
const GAP_NODE = 26;
const GAP_DUMMY = 14;
const VIA_SPACE = 16;
const LOOP_SPACE = 34;
const MIN_COL_GAP = 70;
const MARGIN = 24;

interface Vertex {
  readonly id: string;
  readonly real?: ChartState;
  layer: number;
  order: number;
  w: number;
  h: number;
  /** Extra room kept above the box (for via labels and self-loops). */
  above: number;
  x: number;
  y: number;
}

interface DrawnEdge {
  readonly source: string;
  readonly target: string;
  lines: string[];
  readonly chain: string[];
  readonly kind: "forward" | "backward" | "flat" | "self";
}

/** Width of a label line at the label font size. */
export function labelWidth(text: string): number {
  return text.length * FONT.charLabel;
}

/** Column of each leaf state: BFS depth for live states, one column after them for final states. */
function layersOf(model: ChartModel, states: readonly ChartState[], edges: ReturnType<typeof chartEdges>): Map<string, number> {
  const layer = new Map<string, number>();
  const final = new Set(states.filter((s) => s.type === "final").map((s) => s.id));
  const queue = [model.initial];
  layer.set(model.initial, 0);
  while (queue.length) {
    const id = queue.shift()!;
    for (const e of edges) {
      if (e.source !== id || layer.has(e.target) || final.has(e.target)) continue;
      layer.set(e.target, layer.get(id)! + 1);
      queue.push(e.target);
    }
  }
  let maxLive = Math.max(0, ...layer.values());
  for (const s of states) {
    if (!final.has(s.id) && !layer.has(s.id)) layer.set(s.id, ++maxLive);
  }
  for (const s of states) if (final.has(s.id)) layer.set(s.id, maxLive + 1);
  return layer;
}

function crossings(links: [Vertex, Vertex][]): number {
  let n = 0;
  for (let i = 0; i < links.length; i++) {
    for (let j = i + 1; j < links.length; j++) {
      const [a, b] = links[i]!;
      const [c, d] = links[j]!;
      if (a.layer !== c.layer) continue;
      if ((a.order - c.order) * (b.order - d.order) < 0) n++;
    }
  }
  return n;
}

function orderLayers(layers: Vertex[][], links: [Vertex, Vertex][]): void {
  const renumber = (layer: Vertex[]) => layer.forEach((v, i) => (v.order = i));
  layers.forEach(renumber);
  let best = layers.map((l) => [...l]);
  let bestCross = crossings(links);
  const sweep = (down: boolean) => {
    const range = down ? layers.map((_, i) => i).slice(1) : layers.map((_, i) => i).slice(0, -1).reverse();
    for (const i of range) {
      const layer = layers[i]!;
      const bary = new Map<Vertex, number>();
      for (const v of layer) {
        const near = links.filter(([a, b]) => (down ? b === v : a === v)).map(([a, b]) => (down ? a : b).order);
        bary.set(v, near.length ? near.reduce((s, x) => s + x, 0) / near.length : v.order);
      }
      layer.sort((a, b) => bary.get(a)! - bary.get(b)! || a.order - b.order);
      renumber(layer);
    }
  };
  for (let round = 0; round < 4; round++) {
    sweep(round % 2 === 0);
    const c = crossings(links);
    if (c < bestCross) {
      bestCross = c;
      best = layers.map((l) => [...l]);
    }
  }
  best.forEach((l, i) => {
    layers[i] = l;
    renumber(l);
  });
}

/** Places vertices of one layer at their desired centres, in order, without overlaps. */
function settle(layer: Vertex[], desired: Map<Vertex, number>): void {
  const gap = (a: Vertex, b: Vertex) => (a.real && b.real ? GAP_NODE : GAP_DUMMY) + b.above;
  let prev: Vertex | undefined;
  for (const v of layer) {
    const want = desired.get(v)! - v.h / 2;
    v.y = prev ? Math.max(want, prev.y + prev.h + gap(prev, v)) : want;
    prev = v;
  }
  // Balance: shift the whole layer so its mean displacement is zero.
  const shift = layer.reduce((s, v) => s + (desired.get(v)! - v.h / 2 - v.y), 0) / (layer.length || 1);
  for (const v of layer) v.y += shift;
}

const centerY = (v: Vertex) => v.y + v.h / 2;

function bezier(points: readonly Point[]): string {
  const f = fmt;
  let d = `M${f(points[0]!.x)},${f(points[0]!.y)}`;
  for (let i = 1; i < points.length; i++) {
    const p = points[i - 1]!;
    const q = points[i]!;
    const dx = (q.x - p.x) / 2;
    d += ` C${f(p.x + dx)},${f(p.y)} ${f(q.x - dx)},${f(q.y)} ${f(q.x)},${f(q.y)}`;
  }
  return d;
}

/** Formats a coordinate; a non-finite value is a layout bug, never printed. */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`chart layout: non-finite coordinate ${n}`);
  return String(Math.round(n * 10) / 10);
}

const overlaps = (a: Box, b: Box) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

/** Lays the chart out. */
export function layoutChart(model: ChartModel): ChartLayout {
  const states = leafStates(model);
  const allEdges = chartEdges(model).filter((e) => states.some((s) => s.id === e.source) && states.some((s) => s.id === e.target));
  const layerOf = layersOf(model, states, allEdges);

  // Labels shared by two or more edges into the same state are drawn once, above it.
  const incoming = new Map<string, Map<string, number>>();
  for (const e of allEdges) {
    if (e.source === e.target) continue;
    const m = incoming.get(e.target) ?? new Map<string, number>();
    m.set(e.label, (m.get(e.label) ?? 0) + 1);
    incoming.set(e.target, m);
  }
  const via = new Map<string, string[]>();
  for (const [target, m] of incoming) via.set(target, [...m].filter(([, n]) => n >= 2).map(([label]) => label));

  // One drawn edge per (source, target); its label lines are the labels not drawn above the target.
  const drawn = new Map<string, DrawnEdge>();
  const vertices = new Map<string, Vertex>();
  for (const s of states) {
    const hasLoop = allEdges.some((e) => e.source === s.id && e.target === s.id);
    const viaLines = via.get(s.id)?.length ?? 0;
    vertices.set(s.id, {
      id: s.id,
      real: s,
      layer: layerOf.get(s.id)!,
      order: 0,
      w: Math.max(NODE_MIN_W, s.key.length * FONT.charState + 28),
      h: NODE_H,
      above: (hasLoop ? LOOP_SPACE : 0) + viaLines * VIA_SPACE,
      x: 0,
      y: 0,
    });
  }
  for (const e of allEdges) {
    const key = `${e.source}\u0000${e.target}`;
    let d = drawn.get(key);
    if (!d) {
      const ls = layerOf.get(e.source)!;
      const lt = layerOf.get(e.target)!;
      const kind = e.source === e.target ? "self" : lt > ls ? "forward" : lt < ls ? "backward" : "flat";
      const chain = [e.source];
      if (kind === "forward" || kind === "backward") {
        const step = kind === "forward" ? 1 : -1;
        for (let l = ls + step; l !== lt; l += step) {
          const id = `${key}\u0000${l}`;
          vertices.set(id, { id, layer: l, order: 0, w: 0, h: 0, above: 0, x: 0, y: 0 });
          chain.push(id);
        }
      }
      chain.push(e.target);
      d = { source: e.source, target: e.target, lines: [], chain, kind };
      drawn.set(key, d);
    }
    const shared = e.source !== e.target && via.get(e.target)?.includes(e.label);
    if (!shared && !d.lines.includes(e.label)) d.lines.push(e.label);
  }

  // Layers, in document order to start with, then ordered to cut crossings.
  const nLayers = Math.max(...[...vertices.values()].map((v) => v.layer)) + 1;
  const layers: Vertex[][] = Array.from({ length: nLayers }, () => []);
  for (const v of vertices.values()) layers[v.layer]!.push(v);
  const links: [Vertex, Vertex][] = [];
  for (const d of drawn.values()) {
    if (d.kind !== "forward" && d.kind !== "backward") continue;
    for (let i = 1; i < d.chain.length; i++) {
      const a = vertices.get(d.chain[i - 1]!)!;
      const b = vertices.get(d.chain[i]!)!;
      links.push(a.layer < b.layer ? [a, b] : [b, a]);
    }
  }
  orderLayers(layers, links);

  // Columns: widths from the widest state, gaps wide enough for the labels drawn in them.
  const colW = layers.map((l) => Math.max(0, ...l.map((v) => v.w)));
  const gapW = Array.from({ length: Math.max(0, nLayers - 1) }, () => MIN_COL_GAP);
  const adjacentInColumn = (d: DrawnEdge) => Math.abs(vertices.get(d.source)!.order - vertices.get(d.target)!.order) === 1;
  const flatBulge = (d: DrawnEdge) => 22 + 14 * Math.abs(vertices.get(d.source)!.order - vertices.get(d.target)!.order);
  const extraRight = Array.from({ length: nLayers }, () => 0);
  for (const d of drawn.values()) {
    const width = Math.max(0, ...d.lines.map(labelWidth));
    const ls = layerOf.get(d.source)!;
    if (d.kind === "forward") gapW[ls] = Math.max(gapW[ls]!, width + 28);
    else if (d.kind === "backward") gapW[ls - 1] = Math.max(gapW[ls - 1]!, width + 28);
    else if (d.kind === "flat") {
      const adjacent = Math.abs(vertices.get(d.source)!.order - vertices.get(d.target)!.order) === 1;
      const need = adjacent ? width + 24 : flatBulge(d) + width + 12;
      extraRight[ls] = Math.max(extraRight[ls]!, need - (adjacent ? colW[ls]! / 2 : 0));
    }
  }
  for (let i = 0; i < gapW.length; i++) gapW[i] = Math.max(gapW[i]!, extraRight[i]! + 20);
  const colX: number[] = [];
  let x = 40; // room for the initial dot
  for (let i = 0; i < nLayers; i++) {
    colX.push(x);
    x += colW[i]! + (gapW[i] ?? 0);
  }
  for (const v of vertices.values()) v.x = colX[v.layer]! + (colW[v.layer]! - v.w) / 2;

  // Rows: start stacked and centred, then pull each vertex towards its neighbours.
  const stackHeight = (l: Vertex[]) => l.reduce((s, v, i) => s + v.h + (i ? (l[i - 1]!.real && v.real ? GAP_NODE : GAP_DUMMY) + v.above : v.above), 0);
  const tallest = Math.max(...layers.map(stackHeight));
  for (const l of layers) {
    let y = (tallest - stackHeight(l)) / 2;
    for (const v of l) {
      y += v.above;
      v.y = y;
      y += v.h + (v.real ? GAP_NODE : GAP_DUMMY);
    }
  }
  const neighbours = (v: Vertex, side: -1 | 1) =>
    links.filter(([a, b]) => (side < 0 ? b === v : a === v)).map(([a, b]) => (side < 0 ? a : b));
  const pull = (i: number, side: -1 | 1) => {
    const layer = layers[i]!;
    const desired = new Map<Vertex, number>();
    for (const v of layer) {
      const n = neighbours(v, side);
      desired.set(v, n.length ? n.reduce((s, u) => s + centerY(u), 0) / n.length : centerY(v));
    }
    settle(layer, desired);
  };
  for (let round = 0; round < 3; round++) {
    if (round % 2 === 0) for (let i = 1; i < nLayers; i++) pull(i, -1);
    else for (let i = nLayers - 2; i >= 0; i--) pull(i, 1);
  }

  // Ports: where edges meet a state's left and right sides, spread by the other end's height.
  const ports = new Map<string, Point>();
  const sides = new Map<string, { key: string; otherY: number }[]>();
  const addPort = (vertexId: string, side: "L" | "R", key: string, otherY: number) => {
    const k = `${vertexId}\u0000${side}`;
    const list = sides.get(k) ?? [];
    if (!list.some((p) => p.key === key)) list.push({ key, otherY });
    sides.set(k, list);
  };
  const initialV = vertices.get(model.initial)!;
  addPort(model.initial, "L", "initial", centerY(initialV));
  for (const d of drawn.values()) {
    if (d.kind === "flat" && !adjacentInColumn(d)) {
      addPort(d.source, "R", `out:${d.target}`, centerY(vertices.get(d.target)!));
      addPort(d.target, "R", `in:${d.source}`, centerY(vertices.get(d.source)!));
    }
    if (d.kind !== "forward" && d.kind !== "backward") continue;
    const first = vertices.get(d.chain[1]!)!;
    const last = vertices.get(d.chain[d.chain.length - 2]!)!;
    const out = d.kind === "forward" ? "R" : "L";
    const into = d.kind === "forward" ? "L" : "R";
    addPort(d.source, out, `out:${d.target}`, centerY(first));
    addPort(d.target, into, `in:${d.source}`, centerY(last));
  }
  for (const [k, list] of sides) {
    const [vertexId, side] = k.split("\u0000") as [string, "L" | "R"];
    const v = vertices.get(vertexId)!;
    list.sort((a, b) => a.otherY - b.otherY);
    const span = Math.min(v.h - 12, (list.length - 1) * 8);
    list.forEach((p, i) => {
      const y = centerY(v) - span / 2 + (list.length > 1 ? (span * i) / (list.length - 1) : 0);
      ports.set(`${k}\u0000${p.key}`, { x: side === "L" ? v.x : v.x + v.w, y });
    });
  }
  const port = (vertexId: string, side: "L" | "R", key: string) => ports.get(`${vertexId}\u0000${side}\u0000${key}`)!;

  // Edges and their labels.
  const nodeBoxes = [...vertices.values()].filter((v) => v.real).map((v) => ({ x: v.x, y: v.y, w: v.w, h: v.h }));
  const placed: Box[] = [];
  for (const v of vertices.values()) {
    const lines = via.get(v.id) ?? [];
    const loop = drawn.has(`${v.id}\u0000${v.id}`) ? LOOP_SPACE : 0;
    lines.forEach((l, i) => placed.push({ x: v.x, y: v.y - loop - 18 - (lines.length - 1 - i) * VIA_SPACE, w: labelWidth(`via ${l}`), h: 14 }));
  }
  const placeLabel = (lines: readonly string[], at: Point, anchor: "middle" | "start"): { at: Point; box: Box } => {
    const w = Math.max(...lines.map(labelWidth)) + 6;
    const h = lines.length * FONT.line + 4;
    for (const dy of [0, -12, 12, -24, 24, -36, 36, -48, 48]) {
      const box = { x: anchor === "middle" ? at.x - w / 2 : at.x - 3, y: at.y + dy - h / 2, w, h };
      if (![...nodeBoxes, ...placed].some((b) => overlaps(b, box))) {
        placed.push(box);
        return { at: { x: anchor === "middle" ? at.x : at.x + w / 2 - 3, y: at.y + dy }, box };
      }
    }
    const box = { x: anchor === "middle" ? at.x - w / 2 : at.x - 3, y: at.y - h / 2, w, h };
    placed.push(box);
    return { at: { x: box.x + w / 2, y: at.y }, box };
  };
  const edges: PlacedEdge[] = [];
  const flatSeen = new Map<string, number>();
  for (const d of drawn.values()) {
    const s = vertices.get(d.source)!;
    const t = vertices.get(d.target)!;
    let path: string;
    let labelPoint: Point;
    let anchor: "middle" | "start" = "middle";
    if (d.kind === "self") {
      // A loop on the top right corner, its label to the right of it.
      const x1 = s.x + s.w - 32;
      const x2 = s.x + s.w - 10;
      path = `M${fmt(x1)},${fmt(s.y)} C${fmt(x1 - 16)},${fmt(s.y - 30)} ${fmt(x2 + 16)},${fmt(s.y - 30)} ${fmt(x2)},${fmt(s.y)}`;
      labelPoint = { x: x2 + 10, y: s.y - 20 };
      anchor = "start";
    } else if (d.kind === "flat") {
      const adjacent = Math.abs(s.order - t.order) === 1;
      if (adjacent) {
        // Neighbours in a column: a straight line between them; the two directions side by side.
        const pair = [d.source, d.target].sort().join("\u0000");
        const nth = flatSeen.get(pair) ?? 0;
        flatSeen.set(pair, nth + 1);
        const cx = Math.min(s.x + s.w / 2, t.x + t.w / 2) + (nth === 0 ? -10 : 10);
        const down = t.y > s.y;
        const y1 = down ? s.y + s.h : s.y;
        const y2 = down ? t.y : t.y + t.h;
        path = `M${fmt(cx)},${fmt(y1)} L${fmt(cx)},${fmt(y2)}`;
        labelPoint = nth === 0 ? { x: cx - 4 - Math.max(...d.lines.map(labelWidth)) - 6, y: (y1 + y2) / 2 } : { x: cx + 6, y: (y1 + y2) / 2 };
        anchor = "start";
      } else {
        // Further apart: an arc out to the right of the column.
        const bulge = flatBulge(d) + (t.y > s.y ? 0 : 7);
        const { x: x1, y: y1 } = port(d.source, "R", `out:${d.target}`);
        const { x: x2, y: y2 } = port(d.target, "R", `in:${d.source}`);
        const xr = Math.max(x1, x2) + bulge;
        path = `M${fmt(x1)},${fmt(y1)} C${fmt(xr)},${fmt(y1)} ${fmt(xr)},${fmt(y2)} ${fmt(x2)},${fmt(y2)}`;
        labelPoint = { x: Math.max(x1, x2) + bulge * 0.75 + 4, y: (y1 + y2) / 2 };
        anchor = "start";
      }
    } else {
      const out = d.kind === "forward" ? "R" : "L";
      const into = d.kind === "forward" ? "L" : "R";
      const points: Point[] = [port(d.source, out, `out:${d.target}`)];
      for (const id of d.chain.slice(1, -1)) {
        const v = vertices.get(id)!;
        points.push({ x: v.x, y: v.y });
      }
      points.push(port(d.target, into, `in:${d.source}`));
      path = bezier(points);
      labelPoint = { x: (points[0]!.x + points[1]!.x) / 2, y: (points[0]!.y + points[1]!.y) / 2 };
    }
    const label = d.lines.length ? placeLabel(d.lines, labelPoint, anchor) : undefined;
    edges.push({ source: d.source, target: d.target, d: path, labels: d.lines, ...(label ? { labelAt: label.at, labelBox: label.box } : {}) });
  }

  // The initial dot, left of the initial state.
  const entry = port(model.initial, "L", "initial");
  const dot = { x: entry.x - 26, y: entry.y };
  const initial = { at: dot, d: `M${fmt(dot.x + 5)},${fmt(dot.y)} L${fmt(entry.x)},${fmt(entry.y)}` };

  // Shift everything so the drawing starts at the margin, below the header.
  const placedStates: PlacedState[] = states.map((s) => {
    const v = vertices.get(s.id)!;
    const loopSpace = drawn.has(`${s.id}\u0000${s.id}`) ? LOOP_SPACE : 0;
    return { state: s, box: { x: v.x, y: v.y, w: v.w, h: v.h }, layer: v.layer, via: via.get(s.id) ?? [], loopSpace };
  });
  const boxes: Box[] = [
    ...placedStates.map((p) => ({ ...p.box, y: p.box.y - vertices.get(p.state.id)!.above, h: p.box.h + vertices.get(p.state.id)!.above })),
    ...placedStates.flatMap((p) => p.via.map((l) => ({ x: p.box.x, y: p.box.y - 6, w: labelWidth(`via ${l}`), h: 1 }))),
    ...placed,
    { x: dot.x - 6, y: dot.y - 6, w: 12, h: 12 },
  ];
  for (const v of vertices.values()) if (!v.real) boxes.push({ x: v.x, y: v.y, w: 1, h: 1 });
  for (const d of drawn.values()) {
    if (d.kind !== "flat") continue;
    const s = vertices.get(d.source)!;
    const t = vertices.get(d.target)!;
    boxes.push({ x: Math.max(s.x + s.w, t.x + t.w), y: s.y, w: flatBulge(d) + 8, h: 1 });
  }
  const minX = Math.min(...boxes.map((b) => b.x));
  const minY = Math.min(...boxes.map((b) => b.y));
  const maxX = Math.max(...boxes.map((b) => b.x + b.w));
  const maxY = Math.max(...boxes.map((b) => b.y + b.h));
  return {
    width: Math.ceil(maxX - minX + 2 * MARGIN),
    height: Math.ceil(maxY - minY + 2 * MARGIN),
    states: placedStates,
    edges,
    initial,
    origin: { x: minX - MARGIN, y: minY - MARGIN },
  };
}

/**
 * A self-contained SVG of a chart, drawn from `layoutChart`: rounded boxes for states, a double
 * border for final ones, a dot for the initial pseudo-state, curved edges with arrowheads and
 * labels, and the active states filled. Each state is a `<g class="state" data-state="ID">` so a
 * page can find it; the active ones also carry the class `active`.
 */
import { FONT, fmt, labelWidth, layoutChart } from "./layout.js";
import { everywhereNote, type ChartModel, type RenderOptions } from "./model.js";

/** Escapes text for XML content and attribute values. */
export function xmlEscape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&apos;");
}

const COLORS = {
  live: { fill: "#e3f2fd", stroke: "#1565c0" },
  final: { fill: "#eceff1", stroke: "#455a64" },
  active: { fill: "#ffd54f", stroke: "#e65100" },
  edge: "#546e7a",
  text: "#212121",
  label: "#37474f",
} as const;

const TITLE_H = 24;
const NOTE_H = 16;
const VIA_NOTE = "\"via X\" above a state: the arrows into it that carry no label are taken on X";

/** Renders the chart as a standalone SVG document. */
export function renderSvg(model: ChartModel, options: RenderOptions = {}): string {
  const layout = layoutChart(model);
  const notes = [everywhereNote(model), layout.states.some((p) => p.via.length) ? VIA_NOTE : undefined].filter((n): n is string => n !== undefined);
  const headerH = TITLE_H + notes.length * NOTE_H + 6;
  const noteW = Math.max(0, ...notes.map((n) => labelWidth(n) + 48));
  const width = Math.ceil(Math.max(layout.width, noteW, 200));
  const height = layout.height + headerH;
  const dx = -layout.origin.x;
  const dy = -layout.origin.y + headerH;
  const marker = `${model.id.replace(/[^A-Za-z0-9_-]/g, "_")}-arrow`;
  const active = new Set(options.active ?? []);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" font-family="Helvetica, Arial, sans-serif" role="img" aria-label="${xmlEscape(`${model.id} state chart`)}">`,
    `<title>${xmlEscape(`${model.id} state chart`)}</title>`,
    "<style>",
    `.state.active rect.box { fill: ${COLORS.active.fill}; stroke: ${COLORS.active.stroke}; stroke-width: 3; }`,
    ".state.active text.name { font-weight: bold; }",
    "</style>",
    "<defs>",
    `<marker id="${marker}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">`,
    `<path d="M0,0 L10,5 L0,10 z" fill="${COLORS.edge}"/>`,
    "</marker>",
    "</defs>",
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="12" y="20" font-size="15" font-weight="bold" fill="${COLORS.text}">${xmlEscape(`${model.id} machine`)}</text>`,
  );
  notes.forEach((note, i) => {
    out.push(`<text class="note" x="12" y="${TITLE_H + 12 + i * NOTE_H}" font-size="${FONT.label}" font-style="italic" fill="${COLORS.label}">${xmlEscape(note)}</text>`);
  });
  out.push(`<g transform="translate(${fmt(dx)},${fmt(dy)})">`);

  // Edges first, so states and labels sit on top of them.
  out.push(`<g class="edges" fill="none" stroke="${COLORS.edge}" stroke-width="1.4">`);
  out.push(`<circle class="initial" cx="${fmt(layout.initial.at.x)}" cy="${fmt(layout.initial.at.y)}" r="6" fill="${COLORS.text}" stroke="none"/>`);
  out.push(`<path class="edge initial" d="${layout.initial.d}" marker-end="url(#${marker})"/>`);
  for (const e of layout.edges) {
    out.push(`<path class="edge" data-source="${xmlEscape(e.source)}" data-target="${xmlEscape(e.target)}" d="${e.d}" marker-end="url(#${marker})"/>`);
  }
  out.push("</g>");

  out.push('<g class="states">');
  for (const p of layout.states) {
    const { x, y, w, h } = p.box;
    const isActive = active.has(p.state.id);
    const final = p.state.type === "final";
    const colors = isActive ? COLORS.active : final ? COLORS.final : COLORS.live;
    const cls = ["state", final ? "final" : "", isActive ? "active" : ""].filter(Boolean).join(" ");
    out.push(`<g class="${cls}" data-state="${xmlEscape(p.state.id)}">`);
    out.push(
      `<rect class="box" x="${fmt(x)}" y="${fmt(y)}" width="${fmt(w)}" height="${fmt(h)}" rx="10" ry="10" fill="${colors.fill}" stroke="${colors.stroke}" stroke-width="${isActive ? 3 : 1.6}"/>`,
    );
    if (final) {
      out.push(`<rect class="inner" x="${fmt(x + 4)}" y="${fmt(y + 4)}" width="${fmt(w - 8)}" height="${fmt(h - 8)}" rx="7" ry="7" fill="none" stroke="${colors.stroke}" stroke-width="1.2"/>`);
    }
    out.push(
      `<text class="name" x="${fmt(x + w / 2)}" y="${fmt(y + h / 2 + FONT.state * 0.35)}" font-size="${FONT.state}" text-anchor="middle" fill="${COLORS.text}"${isActive ? ' font-weight="bold"' : ""}>${xmlEscape(p.state.key)}</text>`,
    );
    p.via.forEach((label, i) => {
      const ly = y - 6 - p.loopSpace - (p.via.length - 1 - i) * 16;
      out.push(`<text class="via" x="${fmt(x)}" y="${fmt(ly)}" font-size="${FONT.label}" font-style="italic" fill="${COLORS.label}" stroke="#ffffff" stroke-width="3" paint-order="stroke">via ${xmlEscape(label)}</text>`);
    });
    out.push("</g>");
  }
  out.push("</g>");

  out.push(`<g class="labels" font-size="${FONT.label}" fill="${COLORS.label}">`);
  for (const e of layout.edges) {
    if (!e.labelAt || !e.labelBox) continue;
    const b = e.labelBox;
    out.push(`<rect x="${fmt(b.x)}" y="${fmt(b.y)}" width="${fmt(b.w)}" height="${fmt(b.h)}" fill="#ffffff" fill-opacity="0.85" stroke="none"/>`);
    e.labels.forEach((line, i) => {
      const ly = b.y + 2 + FONT.line * (i + 1) - 3;
      out.push(`<text x="${fmt(e.labelAt!.x)}" y="${fmt(ly)}" text-anchor="middle">${xmlEscape(line)}</text>`);
    });
  }
  out.push("</g>");
  out.push("</g>");
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

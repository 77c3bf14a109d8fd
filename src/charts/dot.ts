/**
 * Graphviz DOT of a chart, for `dot -Tsvg` and other Graphviz tools: rounded boxes, a point for
 * the initial pseudo-state, a double border for final states, active states filled.
 */
import { chartEdges, everywhereNote, type ChartModel, type RenderOptions } from "./model.js";

/** Quotes a DOT string. */
function q(text: string): string {
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

/** Renders the chart as a Graphviz `digraph`. */
export function renderDot(model: ChartModel, options: RenderOptions = {}): string {
  const lines = [
    `digraph ${q(model.id)} {`,
    "  rankdir=LR;",
    '  node [shape=box, style="rounded", fontname="Helvetica", fontsize=12];',
    '  edge [fontname="Helvetica", fontsize=10];',
    '  "__initial" [shape=point, width=0.15, label=""];',
  ];
  const note = everywhereNote(model);
  lines.push(`  label=${q(`${model.id}${note ? `\n${note}` : ""}`)};`, "  labelloc=t;");
  const leaves = model.states.filter((s) => !model.states.some((c) => c.parent === s.id));
  for (const s of leaves) {
    const attrs = [`label=${q(s.key)}`];
    if (s.type === "final") attrs.push("peripheries=2");
    if (options.active?.includes(s.id)) attrs.push('style="rounded,filled,bold"', 'fillcolor="#ffd54f"', 'color="#e65100"', "penwidth=2");
    lines.push(`  ${q(s.id)} [${attrs.join(", ")}];`);
  }
  lines.push(`  "__initial" -> ${q(model.initial)};`);
  for (const e of chartEdges(model)) lines.push(`  ${q(e.source)} -> ${q(e.target)} [label=${q(e.label)}];`);
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

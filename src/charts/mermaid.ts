/**
 * Mermaid `stateDiagram-v2` text of a chart: `[*] -->` marks the initial state, `--> [*]` each
 * final state, edges carry `EVENT [guard]`, and active states get the `active` class.
 */
import { chartEdges, everywhereNote, type ChartModel, type RenderOptions } from "./model.js";

const KEYWORDS = new Set(["state", "note", "class", "classdef", "direction", "end", "as", "left", "right", "of", "click", "style", "default"]);

/** Mermaid ids: word characters only, never a keyword; the state's own name is kept as its label. */
export function mermaidIds(model: ChartModel): Map<string, string> {
  const ids = new Map<string, string>();
  const used = new Set<string>();
  for (const s of model.states) {
    let id = s.id.replace(/[^A-Za-z0-9_]/g, "_");
    if (KEYWORDS.has(id.toLowerCase()) || !/^[A-Za-z]/.test(id)) id = `s_${id}`;
    while (used.has(id)) id = `${id}_`;
    used.add(id);
    ids.set(s.id, id);
  }
  return ids;
}

/** Makes text safe after a `:` (labels and notes): no characters Mermaid's grammar gives meaning to. */
export function mermaidText(text: string): string {
  return text
    .replace(/:\s*/g, " - ")
    .replace(/[^A-Za-z0-9_ ()[\],=.+\-/']/g, " ").replace(/\s+/g, " ").trim();
}

/** Renders the chart as Mermaid `stateDiagram-v2`. */
export function renderMermaid(model: ChartModel, options: RenderOptions = {}): string {
  const ids = mermaidIds(model);
  const id = (s: string) => ids.get(s) ?? s;
  const lines = ["stateDiagram-v2", `  %% ${mermaidText(model.id)} machine, generated from its definition`];
  const declare = (indent: string, parent: string | undefined) => {
    for (const s of model.states.filter((x) => x.parent === parent)) {
      const label = s.key === id(s.id) ? undefined : mermaidText(s.key);
      const children = model.states.some((c) => c.parent === s.id);
      if (label !== undefined) lines.push(`${indent}state "${label}" as ${id(s.id)}`);
      if (children) {
        lines.push(`${indent}state ${id(s.id)} {`);
        if (s.initial) lines.push(`${indent}  [*] --> ${id(s.initial)}`);
        declare(`${indent}  `, s.id);
        lines.push(`${indent}}`);
      } else if (label === undefined) lines.push(`${indent}${id(s.id)}`);
    }
  };
  declare("  ", undefined);
  lines.push(`  [*] --> ${id(model.initial)}`);
  for (const e of chartEdges(model)) lines.push(`  ${id(e.source)} --> ${id(e.target)} : ${mermaidText(e.label)}`);
  for (const s of model.states) if (s.type === "final") lines.push(`  ${id(s.id)} --> [*]`);
  const note = everywhereNote(model);
  if (note) lines.push(`  note right of ${id(model.initial)} : ${mermaidText(note)}`);
  const active = model.states.filter((s) => options.active?.includes(s.id));
  lines.push("  classDef active fill:#ffd54f,stroke:#e65100,stroke-width:3px,color:#000");
  if (active.length) lines.push(`  class ${active.map((s) => id(s.id)).join(",")} active`);
  return `${lines.join("\n")}\n`;
}

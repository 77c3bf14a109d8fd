/** A chart for terminals: the states, with `*` before the active ones, then the transitions. */
import { chartEdges, everywhereNote, leafStates, transitionLabel, type ChartModel, type RenderOptions } from "./model.js";

/** Renders the chart as plain text. */
export function renderText(model: ChartModel, options: RenderOptions = {}): string {
  const states = leafStates(model);
  const width = Math.max(...states.map((s) => s.id.length));
  const lines = [`${model.id} machine`, "states:"];
  for (const s of states) {
    const marks = [s.id === model.initial ? "initial" : "", s.type === "final" ? "final" : "", options.active?.includes(s.id) ? "active" : ""].filter(Boolean);
    lines.push(`  ${options.active?.includes(s.id) ? "*" : " "} ${marks.length ? s.id.padEnd(width) : s.id}${marks.length ? `  (${marks.join(", ")})` : ""}`);
  }
  lines.push("transitions:");
  for (const e of chartEdges(model)) if (e.transition.source !== null) lines.push(`  ${e.source} --${e.label}--> ${e.target}`);
  for (const t of model.transitions) {
    if (t.source === null && t.target !== undefined) lines.push(`  (every live state) --${transitionLabel(t)}--> ${t.target}`);
  }
  const note = everywhereNote(model);
  if (note) lines.push(note);
  return `${lines.join("\n")}\n`;
}

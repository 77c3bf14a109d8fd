/** The chart model as JSON: `JSON.parse(renderJson(model))` equals `model`. */
import type { ChartModel } from "./model.js";

/** Renders the chart model as indented, newline-terminated JSON. */
export function renderJson(model: ChartModel): string {
  return `${JSON.stringify(model, null, 2)}\n`;
}

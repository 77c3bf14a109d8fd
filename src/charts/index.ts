/**
 * State charts of muster's machines, read from their own definitions and rendered as Mermaid,
 * SVG, DOT, JSON or text. Pure: no I/O.
 */
export {
  activeStateIds,
  chartEdges,
  chartModel,
  everywhereHandlers,
  everywhereNote,
  guardText,
  isFinal,
  leafStates,
  transitionLabel,
} from "./model.js";
export type { ChartEdge, ChartGuard, ChartModel, ChartState, ChartTransition, EverywhereHandler, RenderOptions } from "./model.js";
export { renderMermaid } from "./mermaid.js";
export { renderDot } from "./dot.js";
export { renderJson } from "./json.js";
export { renderText } from "./text.js";
export { renderSvg } from "./svg.js";
export { layoutChart } from "./layout.js";
export type { Box, ChartLayout, PlacedEdge, PlacedState, Point } from "./layout.js";
export {
  CHART_MACHINES,
  CHART_MACHINE_NAMES,
  SLURM_TO_MACHINE_STATE,
  chartTargetOfJob,
  isChartMachineName,
  machineStateOfSlurm,
} from "./machines.js";
export type { ChartMachineName, ChartTarget } from "./machines.js";

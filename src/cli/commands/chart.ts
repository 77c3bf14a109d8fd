/**
 * `muster chart`: print a machine's state chart (`muster chart task --format svg`), or the chart of
 * a job, step or task with its current state lit (`muster chart --job 12 --step 0 --rank 3`).
 */
import {
  CHART_MACHINES,
  CHART_MACHINE_NAMES,
  chartModel,
  chartTargetOfJob,
  isChartMachineName,
  renderDot,
  renderJson,
  renderMermaid,
  renderSvg,
  renderText,
  type ChartModel,
  type RenderOptions,
} from "../../charts/index.js";
import type { Config } from "../../config.js";
import { MusterError } from "../../errors.js";
import type { JobView } from "../../protocol/index.js";
import type { ParsedArgs } from "../args.js";
import { withClient } from "../client.js";
import { parseJobStepId } from "../selectors.js";
import type { CommandContext } from "../specs.js";

/** Output formats of `muster chart`. */
export const CHART_FORMATS = ["mermaid", "svg", "dot", "json", "text"] as const;
/** An output format. */
export type ChartFormat = (typeof CHART_FORMATS)[number];

const RENDERERS: Readonly<Record<ChartFormat, (model: ChartModel, options: RenderOptions) => string>> = {
  mermaid: renderMermaid,
  svg: renderSvg,
  dot: renderDot,
  json: (model) => renderJson(model),
  text: renderText,
};

/** What `muster chart` asked for, checked before any connection is made. */
export type ChartRequest =
  | { readonly kind: "machine"; readonly machine: (typeof CHART_MACHINE_NAMES)[number]; readonly format: ChartFormat }
  | { readonly kind: "job"; readonly job: string; readonly step?: string; readonly rank?: number; readonly format: ChartFormat };

/** Parses `muster chart` arguments; throws MusterError USAGE naming the bad argument. */
export function parseChartArgs(args: ParsedArgs): ChartRequest {
  const o = args.options;
  const p = args.positionals;
  const format = o.format === undefined ? undefined : String(o.format);
  if (format !== undefined && !(CHART_FORMATS as readonly string[]).includes(format)) {
    throw new MusterError("USAGE", `chart: unknown format "${format}" (expected ${CHART_FORMATS.join(", ")})`);
  }
  if (o.job === undefined) {
    if (o.step !== undefined || o.rank !== undefined) throw new MusterError("USAGE", `chart: --${o.step !== undefined ? "step" : "rank"} needs --job`);
    if (p.length !== 1) throw new MusterError("USAGE", `chart: expected one machine (${CHART_MACHINE_NAMES.join(", ")}) or --job ID`);
    const machine = p[0]!;
    if (!isChartMachineName(machine)) throw new MusterError("USAGE", `chart: unknown machine "${machine}" (expected ${CHART_MACHINE_NAMES.join(", ")})`);
    return { kind: "machine", machine, format: (format ?? "mermaid") as ChartFormat };
  }
  if (p.length) throw new MusterError("USAGE", `chart: give a machine or --job, not both ("${p[0]}")`);
  // `--job 12.0` is `--job 12 --step 0`.
  const id = parseJobStepId(String(o.job), "chart");
  if (id.step !== undefined && o.step !== undefined) throw new MusterError("USAGE", `chart: --job ${String(o.job)} names a step already; drop --step`);
  const step = id.step !== undefined ? String(id.step) : o.step !== undefined ? String(o.step) : undefined;
  if (o.rank !== undefined && step === undefined) throw new MusterError("USAGE", "chart: --rank needs --step");
  return {
    kind: "job",
    job: id.job,
    ...(step !== undefined ? { step } : {}),
    ...(o.rank !== undefined ? { rank: Number(o.rank) } : {}),
    format: (format ?? "text") as ChartFormat,
  };
}

/** Renders a request's chart; `fetchJob` answers the `query` request for a job. */
export async function chartCommand(request: ChartRequest, fetchJob: (job: string) => Promise<JobView>, out: (s: string) => void): Promise<number> {
  if (request.kind === "machine") {
    out(RENDERERS[request.format](chartModel(CHART_MACHINES[request.machine]), {}));
    return 0;
  }
  const view = await fetchJob(request.job);
  let target;
  try {
    target = chartTargetOfJob(view, { step: request.step, rank: request.rank });
  } catch (e) {
    throw new MusterError(request.rank === undefined ? "UNKNOWN_STEP" : "BAD_REQUEST", `chart: ${e instanceof Error ? e.message : String(e)}`);
  }
  const chart = RENDERERS[request.format](chartModel(CHART_MACHINES[target.machine]), { active: target.active });
  out(request.format === "text" ? `${target.caption}: ${target.active.join(", ") || "state unknown"}\n${chart}` : chart);
  return 0;
}

/** `muster chart` from the command line: a machine's chart needs no connection; a job's asks the supervisor for its view. */
export async function chartMain(args: ParsedArgs, config: Config, ctx: CommandContext): Promise<number> {
  const request = parseChartArgs(args);
  if (request.kind === "machine") return chartCommand(request, () => Promise.reject(new Error("no job")), ctx.out);
  return withClient(config, (c) => chartCommand(request, async (job) => (await c.request("query", { type: "query", v: 1, what: "job", job })) as JobView, ctx.out));
}

/**
 * `muster show job JOB[.STEP]` and `muster show step JOB[.STEP]`: a job, its steps and tasks, or one
 * step, in scontrol's key=value style or as JSON (a JobView; a StepView for one step).
 */
import type { Config } from "../../config.js";
import { MusterError } from "../../errors.js";
import type { JobView } from "../../protocol/index.js";
import type { ParsedArgs } from "../args.js";
import { withClient } from "../client.js";
import { renderJob, renderStep } from "../render.js";
import { parseJobStepId } from "../selectors.js";
import type { CommandContext } from "../specs.js";

/** `muster show` from the command line: checks the id before connecting. */
export async function showMain(args: ParsedArgs, config: Config, ctx: CommandContext): Promise<number> {
  const p = args.positionals;
  if ((p[0] !== "job" && p[0] !== "step") || !p[1] || p.length > 2) throw new MusterError("USAGE", "show: expected 'show job ID' (ID: JOB or JOB.STEP) or 'show step JOB[.STEP]'");
  const what = p[0];
  const id = parseJobStepId(p[1], `show ${what}`);
  const json = Boolean(args.options.json);
  return withClient(config, async (c) => {
    const view = (await c.request("query", { type: "query", v: 1, what: "job", job: id.job })) as JobView;
    if (id.step === undefined && what === "job") {
      ctx.out((json ? JSON.stringify(view, null, 2) : renderJob(view)) + "\n");
      return 0;
    }
    const steps = id.step === undefined ? view.steps : view.steps.filter((s) => s.stepId === String(id.step));
    if (id.step !== undefined && steps.length === 0) throw new MusterError("UNKNOWN_STEP", `job ${view.jobId} has no step ${id.step}`);
    if (json) ctx.out(JSON.stringify(id.step === undefined ? steps : steps[0], null, 2) + "\n");
    else ctx.out(steps.flatMap((s) => renderStep(view.jobId, s)).join("\n") + (steps.length ? "\n" : ""));
    return 0;
  });
}

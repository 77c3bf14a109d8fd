/** `muster watch JOB[.STEP]`: print a job's (or one step's) state changes and notifications until it ends. */
import type { Config } from "../../config.js";
import { MusterError } from "../../errors.js";
import { isFinalState } from "../../exit-status/index.js";
import { JobStateMessageSchema, StepExitCodesMessageSchema, parseMessage, type JobView } from "../../protocol/index.js";
import type { ParsedArgs } from "../args.js";
import { withClient } from "../client.js";
import { formatTime, summaryLines } from "../render.js";
import { parseJobStepId } from "../selectors.js";
import type { CommandContext } from "../specs.js";

/** `muster watch` from the command line. */
export async function watchMain(args: ParsedArgs, config: Config, ctx: CommandContext): Promise<number> {
  const p = args.positionals;
  const json = Boolean(args.options.json);
  const out = ctx.out;
  if (p.length !== 1) throw new MusterError("USAGE", "watch: expected one job id (JOB or JOB.STEP)");
  const target = parseJobStepId(p[0]!, "watch");
  // With a step id, only that step's messages are printed, and the watch ends when the step does.
  const step = target.step === undefined ? undefined : String(target.step);
  return withClient(config, async (c) => {
    const view = (await c.request("query", { type: "query", v: 1, what: "job", job: target.job })) as JobView;
    if (step !== undefined && !view.steps.some((s) => s.stepId === step)) throw new MusterError("UNKNOWN_STEP", `job ${view.jobId} has no step ${step}`);
    const follow = await c.follow(c.subjects.streams.jobs.name, c.subjects.job.ofJob(target.job), (m) => {
      if (m.subject.endsWith(".exitcodes")) {
        const e = parseMessage(StepExitCodesMessageSchema, m.data, m.subject);
        if (!e.ok || (step !== undefined && String(e.value.step) !== step)) return;
        if (json) out(JSON.stringify(e.value) + "\n");
        else for (const l of summaryLines(e.value)) out(`${l}\n`);
        return;
      }
      const s = parseMessage(JobStateMessageSchema, m.data, m.subject);
      if (!s.ok) return;
      const v = s.value;
      // A step's watch also ends with its job (a job that ends before the step starts, say).
      if (step !== undefined && String(v.step) !== step) return v.step === undefined && isFinalState(v.state) ? false : undefined;
      if (json) out(JSON.stringify(v) + "\n");
      else {
        const id = v.step === undefined ? `JobId=${v.job}` : `StepId=${v.job}.${v.step}`;
        out(`${formatTime(v.at)} ${id} State=${v.state} Reason=${v.reason} ExitCode=${v.exitCode}${v.derivedExitCode ? ` DerivedExitCode=${v.derivedExitCode}` : ""}${v.failedNode ? ` FailedNode=${v.failedNode}` : ""}\n`);
      }
      if ((step === undefined ? v.step === undefined : String(v.step) === step) && isFinalState(v.state)) return false;
    });
    await follow.done;
    follow.stop();
    return 0;
  });
}

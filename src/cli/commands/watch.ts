/** `muster watch JOB`: print a job's state changes and notifications until the job ends. */
import type { Config } from "../../config.js";
import { MusterError } from "../../errors.js";
import { isFinalState } from "../../exit-status/index.js";
import { JobStateMessageSchema, StepExitCodesMessageSchema, parseMessage } from "../../protocol/index.js";
import type { ParsedArgs } from "../args.js";
import { withClient } from "../client.js";
import { summaryLines } from "../render.js";
import type { CommandContext } from "../specs.js";

/** `muster watch` from the command line. */
export async function watchMain(args: ParsedArgs, config: Config, ctx: CommandContext): Promise<number> {
  const p = args.positionals;
  const json = Boolean(args.options.json);
  const out = ctx.out;
  if (p.length !== 1) throw new MusterError("USAGE", "watch: expected one job id");
  return withClient(config, async (c) => {
    await c.request("query", { type: "query", v: 1, what: "job", job: p[0]! });
    const follow = await c.follow(c.subjects.streams.jobs.name, c.subjects.job.ofJob(p[0]!), (m) => {
      if (m.subject.endsWith(".exitcodes")) {
        const e = parseMessage(StepExitCodesMessageSchema, m.data, m.subject);
        if (!e.ok) return;
        if (json) out(JSON.stringify(e.value) + "\n");
        else for (const l of summaryLines(e.value)) out(`${l}\n`);
        return;
      }
      const s = parseMessage(JobStateMessageSchema, m.data, m.subject);
      if (!s.ok) return;
      const v = s.value;
      if (json) out(JSON.stringify(v) + "\n");
      else {
        const id = v.step === undefined ? `JobId=${v.job}` : `StepId=${v.job}.${v.step}`;
        out(`${new Date(v.at).toISOString()} ${id} State=${v.state} Reason=${v.reason} ExitCode=${v.exitCode}${v.derivedExitCode ? ` DerivedExitCode=${v.derivedExitCode}` : ""}${v.failedNode ? ` FailedNode=${v.failedNode}` : ""}\n`);
      }
      if (v.step === undefined && isFinalState(v.state)) return false;
    });
    await follow.done;
    follow.stop();
    return 0;
  });
}

/**
 * `muster kill [JOB[.STEP] ...]`: cancel jobs or steps, or send them a signal, like scancel: several
 * ids, `-s/--signal`, and `-u/--user`, `-n/--name`, `-t/--state` to pick jobs (with ids, only the ids
 * that match). Each id is acted on in turn; one that fails is reported on its own line and the rest
 * still go, and the exit status is then 1.
 */
import type { Config } from "../../config.js";
import { MusterError } from "../../errors.js";
import { LIVE_STATES, parseSignal } from "../../exit-status/index.js";
import type { JobView } from "../../protocol/index.js";
import type { ParsedArgs } from "../args.js";
import { withClient } from "../client.js";
import { formatJobStepId, parseJobStepId, parseStates, type JobStepId } from "../selectors.js";
import type { CommandContext } from "../specs.js";

/** What `muster kill` was asked to do, checked before connecting. */
export interface KillPlan {
  readonly ids: readonly JobStepId[];
  readonly signal?: number;
  readonly killWaitSeconds?: number;
  readonly user?: string;
  readonly name?: string;
  readonly states?: readonly string[];
}

/** Parses and checks `muster kill`'s arguments; throws a USAGE error naming the bad one. */
export function parseKill(args: ParsedArgs): KillPlan {
  const o = args.options;
  const ids = args.positionals.map((p) => parseJobStepId(p, "kill"));
  let signal: number | undefined;
  if (o.signal !== undefined) {
    signal = parseSignal(String(o.signal));
    if (signal === undefined) throw new MusterError("USAGE", `kill: unknown signal "${String(o.signal)}" (a name like USR1 or SIGUSR1, or a number 1-64)`);
  }
  let states: string[] | undefined;
  if (o.state !== undefined) {
    states = parseStates(String(o.state), "kill", "--state");
    const ended = states.filter((s) => !(LIVE_STATES as readonly string[]).includes(s));
    if (ended.length) throw new MusterError("USAGE", `kill: --state ${ended.join(",")}: only jobs that have not ended can be killed (PENDING, RUNNING, COMPLETING)`);
  }
  const user = o.user === undefined ? undefined : String(o.user);
  const name = o.name === undefined ? undefined : String(o.name);
  if (ids.length === 0 && user === undefined && name === undefined && states === undefined) {
    throw new MusterError("USAGE", "kill: expected JOB[.STEP] ... or a filter (-u USER, -n NAME, -t STATE)");
  }
  return { ids, signal, killWaitSeconds: o["kill-wait"] as number | undefined, user, name, states };
}

/** Whether `job` passes the plan's filters (user, name, state). */
export function matchesKillFilters(plan: KillPlan, job: JobView): boolean {
  return (plan.user === undefined || job.user === plan.user) && (plan.name === undefined || job.name === plan.name) && (plan.states === undefined || plan.states.includes(job.state));
}

/** `muster kill` from the command line: checks the ids, filters and signal before connecting. */
export async function killMain(args: ParsedArgs, config: Config, ctx: CommandContext): Promise<number> {
  const plan = parseKill(args);
  const filtered = plan.user !== undefined || plan.name !== undefined || plan.states !== undefined;
  return withClient(config, async (c) => {
    let targets: JobStepId[] = [...plan.ids];
    if (filtered) {
      // Filters without -u and without ids act on your own jobs: an operator names -u to act on another's.
      const user = plan.user ?? (plan.ids.length ? undefined : config.user);
      const jobs = (await c.request("query", { type: "query", v: 1, what: "jobs", filters: user === undefined ? undefined : { user } })) as JobView[];
      const picked = jobs.filter((j) => matchesKillFilters({ ...plan, user }, j));
      // With ids as well, only the ids whose job matches (scancel's rule); without, every matching job.
      targets = plan.ids.length ? plan.ids.filter((id) => picked.some((j) => j.jobId === id.job)) : picked.map((j) => ({ job: j.jobId }));
    }
    let status = 0;
    for (const id of targets) {
      try {
        const reply = (await c.request("kill", { type: "kill", v: 1, job: id.job, step: id.step, signal: plan.signal, killWaitSeconds: plan.killWaitSeconds })) as { alreadyEnded?: boolean };
        // A signal cannot reach tasks that have ended (scancel -s says so too); a cancel of an ended job is a no-op.
        if (reply.alreadyEnded && plan.signal !== undefined) {
          ctx.err(`muster: error: kill: job ${formatJobStepId(id)} has ended: signal not sent\n`);
          status = 1;
        }
      } catch (e) {
        if (!(e instanceof MusterError) || !["UNKNOWN_JOB", "UNKNOWN_STEP", "FORBIDDEN", "NOT_RUNNING", "BAD_REQUEST"].includes(e.code)) throw e;
        ctx.err(`muster: error: kill: ${e.message}\n`);
        status = 1;
      }
    }
    return status;
  });
}

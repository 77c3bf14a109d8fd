/**
 * Whether a supervisor already serves a prefix: asked before a second one would start (`muster
 * supervisor`, `muster up`), which would split the control requests and the node messages between
 * two supervisors that each believe they own every job and node.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Config } from "../config.js";
import { MusterError } from "../errors.js";
import { createSubjects, encodeMessage } from "../protocol/index.js";

/** True when a supervisor answers a control request on the configured prefix within `timeoutMs`. */
export async function supervisorAnswers(nc: NatsConnection, cfg: Config, timeoutMs = 2000): Promise<boolean> {
  const subject = createSubjects(cfg.prefix).ctl.op("query", cfg.user);
  try {
    // Any reply, even a refusal, comes from a supervisor; no responders (or silence) means none.
    await nc.request(subject, encodeMessage({ type: "query", v: 1, what: "nodes" }), { timeout: timeoutMs });
    return true;
  } catch {
    return false;
  }
}

/** The one-line error for a second supervisor on a prefix. */
export function supervisorRunningError(cfg: Config, what: string): MusterError {
  return new MusterError(
    "UNAVAILABLE",
    `a supervisor already answers on prefix "${cfg.prefix}" at ${cfg.natsUrl}: not starting ${what} (stop that one first, or use another MUSTER_PREFIX / --prefix)`,
  );
}

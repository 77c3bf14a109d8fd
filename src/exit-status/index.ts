/** The exit-status contract: the only place its rules live. */
export type { ExitCode, TaskOutcome, TaskResult } from "./outcome.js";
export { EXITED_0, decodeWaitStatus, encodeWaitStatus, exited, isBadOutcome, signaled } from "./outcome.js";
export { decodeNodeExit } from "./node-exit.js";
export { MAX_SIGNAL, parseSignal, signalDescription, signalName, signalReason } from "./signals.js";
export type { FinalState, JobParts, JobVerdict, RunState, StepPolicyFacts, StepVerdict } from "./reduce.js";
export {
  EXIT_OK,
  FINAL_STATES,
  LIVE_STATES,
  compareSeverity,
  countedTasks,
  decideJob,
  decideStep,
  derivedExitCode,
  isFinalState,
  outcomeExitCode,
  reduceTaskExitCode,
  runExitStatus,
  worstExitCode,
} from "./reduce.js";
export type { LiveTaskKey, ParsedGroupKey, SummaryTrigger, TaskGroups, TaskStatusEntry } from "./render.js";
export {
  LIVE_TASK_KEYS,
  compareNodeNames,
  describeGroupKey,
  describeOutcome,
  formatExitCode,
  groupTasks,
  outcomeKey,
  parseExitCode,
  parseGroupKey,
  renderExitSummary,
  sortGroupKeys,
  taskErrorLines,
} from "./render.js";
export { formatLocalTime, stopLine } from "./stop-line.js";

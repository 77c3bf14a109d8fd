/** The node agent: runs tasks as real processes and reports what happened to them. */
export { AGENT_DLQ_SOURCE, MAX_LAUNCH_TASKS, createAgent, findPackageRoot, taskEventMsgId } from "./agent.service.js";
export type { Agent, AgentOptions } from "./agent.service.js";
export { defaultNodeName, parseAgentArgs, runAgent } from "./main.js";
export type { RunAgentOptions } from "./main.js";
export { LAUNCHER_SERVER_SOURCE, LAUNCHER_SOURCE } from "./launcher-source.js";
export { LAUNCHER_LOST_TEXT, LAUNCHER_MAX_IN_FLIGHT, Launcher, createLauncher, escapeField } from "./launcher.js";
export type { LaunchOptions, LauncherMode, LauncherOptions } from "./launcher.js";
export { IO_CHUNK_BYTES, IO_MAX_PENDING_BYTES, TaskOutput, incompleteUtf8Tail, ioChunkMsgId } from "./task-output.js";
export type { TaskOutputOptions } from "./task-output.js";
export { OUTBOX_WINDOW, Outbox, publishUntilAcked } from "./outbox.js";
export type { EnqueueOptions, OutboxOptions, RetryOptions } from "./outbox.js";
export { LAUNCHER_KEEP_PREFIX, OUTPUT_GRACE_MS, PERL_PATH, checkPerl, launcherEnv, startTaskProcess } from "./task-process.js";
export type { TaskExit, TaskProcess, TaskProcessOptions } from "./task-process.js";

/** `muster inspect`: the local debugging page, its replay of recorded events, and the Stately bridge. */
export { DEFAULT_INSPECTOR_PORT, createInspector } from "./inspector.service.js";
export type { Inspector, InspectorOptions, JobSummary } from "./inspector.service.js";
export { JobReplay, machineStateOf, placementOf } from "./replay.js";
export type { ReplayInput, ReplayOptions, ReplayState, StepReplayState } from "./replay.js";
export { STATELY_PROTOCOL_VERSION, createStatelyBridge, toStatelyEvent } from "./stately-bridge.js";
export type { StatelyActorEvent, StatelyBridge, StatelyBridgeOptions, StatelyEventEvent, StatelyInspectionEvent, StatelySnapshotEvent } from "./stately-bridge.js";
export { JobRecordReader, loadJobRecord, readStream } from "./history.js";
export type { JobRecord, RecordedJobMessage, RecordedTaskEvent } from "./history.js";

/** The muster wire protocol: subjects, stream and bucket names, message schemas and the codec. */
export {
  BATCH_STEP,
  CTL_OPS,
  DEFAULT_PREFIX,
  MAX_TOKEN_LENGTH,
  NODE_CHANNELS,
  SubjectTokenError,
  TOKEN_PATTERN,
  checkPrefix,
  checkToken,
  createSubjects,
  isToken,
} from "./subjects.js";
export type {
  Buckets,
  CtlOp,
  NodeChannel,
  ParsedSubject,
  StepId,
  StreamDef,
  Streams,
  SubjectTokenKind,
  Subjects,
} from "./subjects.js";

export {
  ERROR_CODES,
  EXIT_CODE_PATTERN,
  EpochMsSchema,
  EpochSchema,
  ErrorCodeSchema,
  ExitCodeStringSchema,
  IDSET_PATTERN,
  IdSetSchema,
  JobIdSchema,
  NodeNameSchema,
  NonEmptyIdSetSchema,
  PROTOCOL_VERSION,
  PidSchema,
  PositiveIntSchema,
  RankSchema,
  SecondsSchema,
  SignalNumberSchema,
  StepIdSchema,
  TokenSchema,
  UserSchema,
  VersionSchema,
  WireErrorSchema,
} from "./common.schema.js";
export type { ErrorCode, WireError } from "./common.schema.js";

export {
  AgentTaskOutcomeSchema,
  ExitedOutcomeSchema,
  LaunchFailedOutcomeSchema,
  NodeLostOutcomeSchema,
  SignaledOutcomeSchema,
  TaskOutcomeSchema,
} from "./outcome.schema.js";
export type { AgentTaskOutcome } from "./outcome.schema.js";

export {
  ArgvSchema,
  BatchSpecSchema,
  ControlRequestSchema,
  EnvSchema,
  KillRequestSchema,
  QUERY_KINDS,
  QueryFiltersSchema,
  QueryRequestSchema,
  ReplyErrSchema,
  ReplyOkSchema,
  ReplySchema,
  SignalRequestSchema,
  SubmitReplyDataSchema,
  SubmitRequestSchema,
  replySchemaOf,
} from "./control.schema.js";
export type {
  BatchSpec,
  ControlRequest,
  KillRequest,
  QueryFilters,
  QueryKind,
  QueryRequest,
  Reply,
  ReplyErr,
  ReplyOk,
  SignalRequest,
  SubmitReplyData,
  SubmitRequest,
} from "./control.schema.js";

export {
  CommandAckErrSchema,
  CommandAckOkSchema,
  CommandAckSchema,
  FenceCommandSchema,
  LaunchCommandSchema,
  NodeCommandSchema,
  PingCommandSchema,
  SignalCommandSchema,
} from "./command.schema.js";
export type { CommandAck, FenceCommand, LaunchCommand, NodeCommand, PingCommand, SignalCommand } from "./command.schema.js";

export { TaskEndedSchema, TaskEventSchema, TaskStartedSchema } from "./event.schema.js";
export type { TaskEnded, TaskEvent, TaskStarted } from "./event.schema.js";

export { BYE_REASONS, ByeSchema, DrainingSchema, HeartbeatSchema, HelloSchema, NodeMessageSchema } from "./node.schema.js";
export type { Bye, ByeReason, Draining, Heartbeat, Hello, NodeMessage } from "./node.schema.js";

export {
  FINAL_GROUP_KEY_PATTERN,
  FINAL_JOB_STATES,
  FailureTriggerSchema,
  FinalJobStateSchema,
  GROUP_KEY_PATTERN,
  JOB_STATES,
  JobStateMessageSchema,
  JobStateSchema,
  KillReasonSchema,
  LIVE_GROUP_KEYS,
  LIVE_JOB_STATES,
  StepExitCodesMessageSchema,
  StepFirstFailureSchema,
  StepStoppingSchema,
  StepSummarySchema,
  TASK_PICTURE_JSON_SCHEMA,
  checkTaskPicture,
  packedTaskStatusSchema,
  taskCountsSchema,
  taskPictureShape,
} from "./state.schema.js";
export type {
  FailureTrigger,
  FinalJobState,
  JobState,
  JobStateMessage,
  KillReason,
  LiveGroupKey,
  StepExitCodesMessage,
  StepFirstFailure,
  StepStopping,
  StepSummary,
} from "./state.schema.js";

export { IO_STREAMS, IoChunkSchema } from "./io.schema.js";
export type { IoChunk, IoStream } from "./io.schema.js";

export { DLQ_PAYLOAD_LIMIT, DlqPayloadSchema, DlqRecordSchema } from "./dlq.schema.js";
export type { DlqPayload, DlqRecord } from "./dlq.schema.js";

export {
  MAX_PAYLOAD_BYTES,
  MESSAGE_SCHEMAS,
  PARSE_FAILURE_CODES,
  ProtocolError,
  createDlqRecord,
  encodeMessage,
  errReply,
  isOkReply,
  okReply,
  parseMessage,
} from "./messages.js";
export type { DlqRecordOptions, Message, MessageType, ParseFailureCode, ParseResult } from "./messages.js";
export {
  MAX_PACKED_TASKS,
  PACKED_BITS,
  PACK_ABOVE_BYTES,
  PICTURE_BUDGET_BYTES,
  checkPackedTaskStatus,
  decodeTaskPicture,
  encodeTaskPicture,
  packTaskStatus,
  withIdSets,
} from "./picture.js";
export type { EncodeTaskPictureOptions, PackedBits, PackedTaskStatus, TaskCounts, WireTaskPicture, WireTaskPictureFields } from "./picture.js";
export type { JobView, NodeView, StepView, TaskView } from "./view.schema.js";
export { JobViewSchema, NodeViewSchema, StepViewSchema, TASK_STATES, TaskViewSchema } from "./view.schema.js";

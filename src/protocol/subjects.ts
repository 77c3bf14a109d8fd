/**
 * Subject, stream and bucket names: the only place muster builds a subject string.
 * Every variable token is validated so that a value such as `a.b`, `*`, `>` or one with spaces
 * can never widen or split a subject (and so slip past NATS permissions).
 */

/** What a subject token may contain: node names, users, job ids, DLQ sources, prefix parts. */
export const TOKEN_PATTERN = /^[A-Za-z0-9_-]+$/;

/** Longest accepted token; NATS has no hard limit, this keeps subjects and stream keys short. */
export const MAX_TOKEN_LENGTH = 128;

/** The default subject prefix. */
export const DEFAULT_PREFIX = "muster";

/** The literal step id of a batch job's script step. */
export const BATCH_STEP = "batch";

/** A step id: a non-negative integer for `run` steps, or `batch` for the batch script step. */
export type StepId = number | typeof BATCH_STEP;

/** The four control operations, each on `<p>.ctl.<user>.<op>`. */
export const CTL_OPS = ["submit", "kill", "signal", "query"] as const;

/** A control operation. */
export type CtlOp = (typeof CTL_OPS)[number];

/** The per-node channels on `<p>.node.<node>.<channel>`. */
export const NODE_CHANNELS = ["cmd", "hb", "hello", "bye", "draining"] as const;

/** A per-node channel. */
export type NodeChannel = (typeof NODE_CHANNELS)[number];

/** Which part of a subject a bad token was meant for. */
export type SubjectTokenKind = "prefix" | "user" | "node" | "job" | "step" | "task" | "source";

/** Thrown when a value cannot be used as a subject token; nothing is published or subscribed. */
export class SubjectTokenError extends Error {
  /** Stable code for logs and for the CLI's error line. */
  readonly code = "INVALID_SUBJECT_TOKEN" as const;
  /** Which token was bad. */
  readonly kind: SubjectTokenKind;
  /** The rejected value, as given. */
  readonly value: unknown;

  constructor(kind: SubjectTokenKind, value: unknown, why: string) {
    super(`invalid ${kind} for a subject token: ${JSON.stringify(value) ?? String(value)} (${why})`);
    this.name = "SubjectTokenError";
    this.kind = kind;
    this.value = value;
  }
}

/** Returns the value if it is a valid subject token, otherwise throws SubjectTokenError. */
export function checkToken(kind: SubjectTokenKind, value: unknown): string {
  if (typeof value !== "string") throw new SubjectTokenError(kind, value, "not a string");
  if (value.length === 0) throw new SubjectTokenError(kind, value, "empty");
  if (value.length > MAX_TOKEN_LENGTH) throw new SubjectTokenError(kind, value, `longer than ${MAX_TOKEN_LENGTH} characters`);
  if (!TOKEN_PATTERN.test(value)) throw new SubjectTokenError(kind, value, "only letters, digits, '_' and '-' are allowed");
  return value;
}

/** True when the value is usable as a subject token. */
export function isToken(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= MAX_TOKEN_LENGTH && TOKEN_PATTERN.test(value);
}

function checkIndex(kind: "step" | "task", value: unknown): string {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new SubjectTokenError(kind, value, "not a non-negative integer");
  }
  return String(value);
}

function checkStep(value: unknown): string {
  return value === BATCH_STEP ? BATCH_STEP : checkIndex("step", value);
}

/** Validates a prefix: one or more dot-separated tokens (`muster`, `acme.muster`). */
export function checkPrefix(prefix: unknown): string {
  if (typeof prefix !== "string") throw new SubjectTokenError("prefix", prefix, "not a string");
  for (const part of prefix.split(".")) {
    if (!isToken(part)) throw new SubjectTokenError("prefix", prefix, "each dot-separated part must be 1..128 of [A-Za-z0-9_-]");
  }
  return prefix;
}

/** A JetStream stream muster owns: its name and the subjects it captures. */
export interface StreamDef {
  readonly name: string;
  readonly subjects: readonly string[];
}

/** The streams of one installation. Control and node-command subjects are never captured (requests must reach the services, not JetStream). */
export interface Streams {
  /** `<P>_EVENTS` ← `<p>.evt.>`: task events, the supervisor's log for replay and the inspector's timeline. */
  readonly events: StreamDef;
  /** `<P>_JOBS` ← `<p>.job.>`: job/step state changes, first-failure notifications and step summaries. */
  readonly jobs: StreamDef;
  /** `<P>_NODES` ← hello, bye, draining, hb of every node: latest per subject is what matters. */
  readonly nodes: StreamDef;
  /** `<P>_IO` ← `<p>.io.>`: task stdout/stderr chunks, bounded by size and age. */
  readonly io: StreamDef;
  /** `<P>_DLQ` ← `<p>.dlq.>`: rejected input with its reason. */
  readonly dlq: StreamDef;
}

/** The KV buckets of one installation (names are lowercase, `.` of the prefix becomes `_`). */
export interface Buckets {
  /** `<p>_snapshots`: one persisted job snapshot per job id, with the event-stream sequence it covers. */
  readonly snapshots: string;
  /** `<p>_leases`: partition leases held by supervisors (compare-and-set on revision). */
  readonly leases: string;
  /** `<p>_history`: finished-job records kept for `history` queries, with a retention age. */
  readonly history: string;
}

/** What a muster subject means, as recovered by `Subjects.parse`. */
export type ParsedSubject =
  | { readonly kind: "ctl"; readonly user: string; readonly op: CtlOp }
  | { readonly kind: "node"; readonly node: string; readonly channel: NodeChannel }
  | { readonly kind: "evt"; readonly node: string; readonly job: string; readonly step: StepId; readonly task: number }
  | { readonly kind: "io"; readonly job: string; readonly step: StepId; readonly task: number }
  | { readonly kind: "job.state"; readonly job: string }
  | { readonly kind: "step.exitcodes"; readonly job: string; readonly step: StepId }
  | { readonly kind: "dlq"; readonly source: string };

/** Subject builders bound to one prefix; concrete subjects are functions, wildcards are strings ending in `All`/`all`. */
export interface Subjects {
  readonly prefix: string;
  readonly ctl: {
    /** `<p>.ctl.<user>.<op>` */
    op(op: CtlOp, user: string): string;
    submit(user: string): string;
    kill(user: string): string;
    signal(user: string): string;
    query(user: string): string;
    /** `<p>.ctl.*.<op>`: what the supervisor subscribes to (queue group). */
    opAll(op: CtlOp): string;
    readonly submitAll: string;
    readonly killAll: string;
    readonly signalAll: string;
    readonly queryAll: string;
    /** `<p>.ctl.>` */
    readonly all: string;
  };
  readonly node: {
    /** `<p>.node.<node>.cmd`: supervisor → agent requests (launch, signal). */
    cmd(node: string): string;
    /** `<p>.node.<node>.hb` */
    hb(node: string): string;
    /** `<p>.node.<node>.hello` */
    hello(node: string): string;
    /** `<p>.node.<node>.bye` */
    bye(node: string): string;
    /** `<p>.node.<node>.draining` */
    draining(node: string): string;
    /** `<p>.node.<node>.>`: everything of one node (permissions). */
    own(node: string): string;
    readonly hbAll: string;
    readonly helloAll: string;
    readonly byeAll: string;
    readonly drainingAll: string;
  };
  readonly evt: {
    /** `<p>.evt.<node>.<job>.<step>.<task>` */
    task(node: string, job: string, step: StepId, task: number): string;
    /** `<p>.evt.<node>.>`: what one agent may publish. */
    ofNode(node: string): string;
    /** `<p>.evt.*.<job>.>`: one job's events (inspector timeline). */
    ofJob(job: string): string;
    /** `<p>.evt.>` */
    readonly all: string;
  };
  readonly io: {
    /** `<p>.io.<job>.<step>.<task>` */
    task(job: string, step: StepId, task: number): string;
    /** `<p>.io.<job>.<step>.*` */
    ofStep(job: string, step: StepId): string;
    /** `<p>.io.<job>.>` */
    ofJob(job: string): string;
    /** `<p>.io.>` */
    readonly all: string;
  };
  readonly job: {
    /** `<p>.job.<job>.state` */
    state(job: string): string;
    /** `<p>.job.<job>.step.<step>.exitcodes`: first-failure notification and final summary. */
    exitCodes(job: string, step: StepId): string;
    /** `<p>.job.<job>.>` */
    ofJob(job: string): string;
    /** `<p>.job.*.state` */
    readonly stateAll: string;
    /** `<p>.job.*.step.*.exitcodes` */
    readonly exitCodesAll: string;
    /** `<p>.job.>` */
    readonly all: string;
  };
  readonly dlq: {
    /** `<p>.dlq.<source>`: source names where the rejected input came from (`evt`, `node`, `ctl`, …). */
    of(source: string): string;
    /** `<p>.dlq.>` */
    readonly all: string;
  };
  readonly streams: Streams;
  readonly buckets: Buckets;
  /** Recovers the tokens of a concrete muster subject under this prefix; undefined for anything else. */
  parse(subject: string): ParsedSubject | undefined;
}

function parseStep(token: string | undefined): StepId | undefined {
  if (token === BATCH_STEP) return BATCH_STEP;
  return parseIndex(token);
}

function parseIndex(token: string | undefined): number | undefined {
  if (token === undefined || !/^(0|[1-9]\d*)$/.test(token)) return undefined;
  const n = Number(token);
  return Number.isSafeInteger(n) ? n : undefined;
}

function isCtlOp(value: string | undefined): value is CtlOp {
  return (CTL_OPS as readonly (string | undefined)[]).includes(value);
}

function isNodeChannel(value: string | undefined): value is NodeChannel {
  return (NODE_CHANNELS as readonly (string | undefined)[]).includes(value);
}

/** Builds the subject, stream and bucket names of one installation (default prefix `muster`). */
export function createSubjects(prefix: string = DEFAULT_PREFIX): Subjects {
  const p = checkPrefix(prefix);
  const upper = p.toUpperCase().replaceAll(".", "_");
  const lower = p.toLowerCase().replaceAll(".", "_");
  const user = (u: string): string => checkToken("user", u);
  const node = (n: string): string => checkToken("node", n);
  const job = (j: string): string => checkToken("job", j);
  const ctl = (op: CtlOp, u: string): string => `${p}.ctl.${user(u)}.${op}`;
  const nodeSubject = (n: string, channel: NodeChannel): string => `${p}.node.${node(n)}.${channel}`;

  const parse = (subject: string): ParsedSubject | undefined => {
    if (!subject.startsWith(`${p}.`)) return undefined;
    const t = subject.slice(p.length + 1).split(".");
    if (!t.every(isToken)) return undefined;
    const [head, a, b, c, d] = t;
    switch (head) {
      case "ctl":
        return t.length === 3 && a !== undefined && isCtlOp(b) ? { kind: "ctl", user: a, op: b } : undefined;
      case "node":
        return t.length === 3 && a !== undefined && isNodeChannel(b) ? { kind: "node", node: a, channel: b } : undefined;
      case "evt": {
        const step = parseStep(c);
        const task = parseIndex(d);
        return t.length === 5 && a !== undefined && b !== undefined && step !== undefined && task !== undefined
          ? { kind: "evt", node: a, job: b, step, task }
          : undefined;
      }
      case "io": {
        const step = parseStep(b);
        const task = parseIndex(c);
        return t.length === 4 && a !== undefined && step !== undefined && task !== undefined ? { kind: "io", job: a, step, task } : undefined;
      }
      case "job": {
        if (t.length === 3 && a !== undefined && b === "state") return { kind: "job.state", job: a };
        const step = parseStep(c);
        return t.length === 5 && a !== undefined && b === "step" && step !== undefined && d === "exitcodes"
          ? { kind: "step.exitcodes", job: a, step }
          : undefined;
      }
      case "dlq":
        return t.length === 2 && a !== undefined ? { kind: "dlq", source: a } : undefined;
      default:
        return undefined;
    }
  };

  return Object.freeze({
    prefix: p,
    ctl: Object.freeze({
      op: ctl,
      submit: (u: string) => ctl("submit", u),
      kill: (u: string) => ctl("kill", u),
      signal: (u: string) => ctl("signal", u),
      query: (u: string) => ctl("query", u),
      opAll: (op: CtlOp) => `${p}.ctl.*.${op}`,
      submitAll: `${p}.ctl.*.submit`,
      killAll: `${p}.ctl.*.kill`,
      signalAll: `${p}.ctl.*.signal`,
      queryAll: `${p}.ctl.*.query`,
      all: `${p}.ctl.>`,
    }),
    node: Object.freeze({
      cmd: (n: string) => nodeSubject(n, "cmd"),
      hb: (n: string) => nodeSubject(n, "hb"),
      hello: (n: string) => nodeSubject(n, "hello"),
      bye: (n: string) => nodeSubject(n, "bye"),
      draining: (n: string) => nodeSubject(n, "draining"),
      own: (n: string) => `${p}.node.${node(n)}.>`,
      hbAll: `${p}.node.*.hb`,
      helloAll: `${p}.node.*.hello`,
      byeAll: `${p}.node.*.bye`,
      drainingAll: `${p}.node.*.draining`,
    }),
    evt: Object.freeze({
      task: (n: string, j: string, s: StepId, r: number) => `${p}.evt.${node(n)}.${job(j)}.${checkStep(s)}.${checkIndex("task", r)}`,
      ofNode: (n: string) => `${p}.evt.${node(n)}.>`,
      ofJob: (j: string) => `${p}.evt.*.${job(j)}.>`,
      all: `${p}.evt.>`,
    }),
    io: Object.freeze({
      task: (j: string, s: StepId, r: number) => `${p}.io.${job(j)}.${checkStep(s)}.${checkIndex("task", r)}`,
      ofStep: (j: string, s: StepId) => `${p}.io.${job(j)}.${checkStep(s)}.*`,
      ofJob: (j: string) => `${p}.io.${job(j)}.>`,
      all: `${p}.io.>`,
    }),
    job: Object.freeze({
      state: (j: string) => `${p}.job.${job(j)}.state`,
      exitCodes: (j: string, s: StepId) => `${p}.job.${job(j)}.step.${checkStep(s)}.exitcodes`,
      ofJob: (j: string) => `${p}.job.${job(j)}.>`,
      stateAll: `${p}.job.*.state`,
      exitCodesAll: `${p}.job.*.step.*.exitcodes`,
      all: `${p}.job.>`,
    }),
    dlq: Object.freeze({
      of: (source: string) => `${p}.dlq.${checkToken("source", source)}`,
      all: `${p}.dlq.>`,
    }),
    streams: Object.freeze({
      events: Object.freeze({ name: `${upper}_EVENTS`, subjects: Object.freeze([`${p}.evt.>`]) }),
      jobs: Object.freeze({ name: `${upper}_JOBS`, subjects: Object.freeze([`${p}.job.>`]) }),
      nodes: Object.freeze({
        name: `${upper}_NODES`,
        subjects: Object.freeze([`${p}.node.*.hello`, `${p}.node.*.bye`, `${p}.node.*.draining`, `${p}.node.*.hb`]),
      }),
      io: Object.freeze({ name: `${upper}_IO`, subjects: Object.freeze([`${p}.io.>`]) }),
      dlq: Object.freeze({ name: `${upper}_DLQ`, subjects: Object.freeze([`${p}.dlq.>`]) }),
    }),
    buckets: Object.freeze({
      snapshots: `${lower}_snapshots`,
      leases: `${lower}_leases`,
      history: `${lower}_history`,
    }),
    parse,
  });
}

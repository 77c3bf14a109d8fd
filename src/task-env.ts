/**
 * What a task's environment holds beside the submitted one: muster's own variables, Slurm's (so a
 * Slurm user's script runs unchanged), and never a secret. Pure helpers shared by the CLI (what is
 * submitted), the supervisor (what is stored) and the agent (what a task gets).
 */

/** Variables the agent sets for each task; never propagated from the submitting environment. */
export const TASK_VARIABLES: ReadonlySet<string> = new Set([
  "MUSTER_JOB_ID",
  "MUSTER_STEP_ID",
  "MUSTER_TASK_ID",
  "MUSTER_LOCALID",
  "MUSTER_NTASKS",
  "MUSTER_NNODES",
  "MUSTER_NODEID",
  "MUSTER_NODE",
]);

/**
 * Secrets of muster's own connections: never taken from a submitter's environment, never stored
 * with a job, never given to a task by `--export`.
 */
export const SECRET_VARIABLES: ReadonlySet<string> = new Set([
  "NATS_PASSWORD",
  "NATS_TOKEN",
  "NATS_NKEY",
  "NATS_NKEY_SEED",
  "NATS_SEED",
  "NATS_JWT",
  "MUSTER_SYS_USER",
  "MUSTER_SYS_PASSWORD",
  "MUSTER_SYS_CREDS",
]);

/** True for a variable muster never passes on (a NATS or system-account secret). */
export function isSecretVariable(name: string): boolean {
  return SECRET_VARIABLES.has(name);
}

/** True for Slurm's variables (`SLURM_*`, `SLURMD_*`): the agent sets them; a submitter's are not passed on. */
export function isSlurmVariable(name: string): boolean {
  return name.startsWith("SLURM_") || name.startsWith("SLURMD_");
}

/** The environment without secrets and with only names and values exec accepts. */
export function withoutSecrets(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v !== undefined && /^[^=\0]+$/.test(k) && !v.includes("\0") && !isSecretVariable(k)) out[k] = v;
  }
  return out;
}

/** A NATS URL list without the passwords or tokens some URLs carry (`nats://u:p@host` → `nats://u@host`). */
export function urlWithoutSecrets(urls: string): string {
  return urls.replace(/(\/\/)([^@/,]*)@/g, (_, slashes: string, info: string) => {
    const user = info.includes(":") ? info.slice(0, info.indexOf(":")) : "";
    return user ? `${slashes}${user}@` : slashes;
  });
}

/** What Slurm's variables of a task are made from: facts about its job and step the agent cannot know alone. */
export interface SlurmFacts {
  readonly jobName: string;
  /** The job's nodes, hostlist form (`node-[1-3]`). */
  readonly jobNodeList: string;
  readonly jobNumNodes: number;
  /** The job's tasks per node, Slurm's compressed form (`2(x3),1`). */
  readonly jobTasksPerNode: string;
  /** The step's nodes and tasks per node, in the same forms. */
  readonly stepNodeList: string;
  readonly stepTasksPerNode: string;
  /** Slots of the job's allocation on this node. */
  readonly cpusOnNode: number;
  /** Where and on which host the job was submitted. */
  readonly submitDir: string;
  readonly submitHost?: string;
}

/** What a launch adds to Slurm's facts: the ids and counts every task of it shares. */
export interface SlurmLaunch {
  readonly job: string;
  /** `batch` for a batch script, else the step's number. */
  readonly step: string | number;
  readonly user: string;
  readonly node: string;
  /** The step's task and node counts (a batch script's: its allocation's). */
  readonly ntasks: number;
  readonly nnodes: number;
  /** This node's index among the step's nodes. */
  readonly nodeIndex: number;
  readonly facts: SlurmFacts;
}

/**
 * The Slurm variables every task of a launch shares, as srun and sbatch set them: a batch script
 * gets the job's (no step variables), a step's task the step's. SLURM_PROCID and SLURM_LOCALID
 * are per task: see slurmTaskVariables.
 */
export function slurmLaunchVariables(l: SlurmLaunch): Record<string, string> {
  const f = l.facts;
  const env: Record<string, string> = {
    SLURM_JOB_ID: l.job,
    SLURM_JOBID: l.job,
    SLURM_JOB_NAME: f.jobName,
    SLURM_JOB_USER: l.user,
    SLURM_JOB_NODELIST: f.jobNodeList,
    SLURM_NODELIST: f.jobNodeList,
    SLURM_JOB_NUM_NODES: String(f.jobNumNodes),
    SLURM_JOB_CPUS_PER_NODE: f.jobTasksPerNode,
    SLURM_CPUS_ON_NODE: String(f.cpusOnNode),
    SLURM_NTASKS: String(l.ntasks),
    SLURM_NPROCS: String(l.ntasks),
    SLURM_NNODES: String(l.nnodes),
    SLURM_NODEID: String(l.nodeIndex),
    SLURMD_NODENAME: l.node,
    SLURM_SUBMIT_DIR: f.submitDir,
  };
  if (f.submitHost) env.SLURM_SUBMIT_HOST = f.submitHost;
  if (l.step === "batch") {
    env.SLURM_TASKS_PER_NODE = f.jobTasksPerNode;
  } else {
    const step = String(l.step);
    Object.assign(env, {
      SLURM_STEP_ID: step,
      SLURM_STEPID: step,
      SLURM_STEP_NUM_TASKS: String(l.ntasks),
      SLURM_STEP_NUM_NODES: String(l.nnodes),
      SLURM_STEP_NODELIST: f.stepNodeList,
      SLURM_STEP_TASKS_PER_NODE: f.stepTasksPerNode,
      SLURM_TASKS_PER_NODE: f.stepTasksPerNode,
    });
  }
  return env;
}

/** The per-task Slurm variables: the task's global rank and its index on its node. */
export function slurmTaskVariables(rank: number, localId: number): Record<string, string> {
  return { SLURM_PROCID: String(rank), SLURM_LOCALID: String(localId) };
}

/**
 * Slurm flags that `muster run` and `muster batch` do not have, each with a one-line answer: what
 * to use instead, or why muster has no such thing. A flag a command does have never reaches this table.
 */

/** Why a Slurm flag is not there, by flag as a user types it (`--mem`, `-c`); flags of one kind share one answer. */
const ANSWERS: readonly (readonly [flags: readonly string[], answer: string])[] = [
  [["-c", "--cpus-per-task"], "a task takes one slot; to leave several cores to each task, start agents with fewer slots (muster agent --slots N)"],
  [["--mem", "--mem-per-cpu", "--mem-per-gpu"], "muster does not track memory; a task can use what its node has"],
  [["-G", "--gpus", "--gres", "--gpus-per-task", "--gpus-per-node", "--cpus-per-gpu", "--gpu-bind"], "muster does not track GPUs or other generic resources"],
  [["-p", "--partition"], "muster has one pool of nodes, no partitions (see muster nodes)"],
  [["-A", "--account", "--wckey"], "muster has no accounts; a job belongs to the submitting user (MUSTER_USER)"],
  [["-q", "--qos", "--priority", "--nice", "--reservation", "-L", "--licenses"], "muster starts jobs first come, first served, with no QOS, priorities, reservations or licenses"],
  [["--exclusive"], "nodes are shared by slots; to hold a whole node ask for all its slots (--ntasks-per-node equal to its slots in muster nodes)"],
  [["-s", "--oversubscribe"], "a slot holds one task; muster never oversubscribes (give the NATS server before the command: muster -s URL run …)"],
  [["-x", "--exclude"], "name the nodes to use with -w/--nodelist instead"],
  [["-C", "--constraint", "--prefer"], "muster nodes have no features; name the nodes to use with -w/--nodelist"],
  [["--mail-type", "--mail-user"], "muster sends no mail; follow a job with muster watch JOB or muster batch --wait"],
  [["-a", "--array"], "submit one job per index (for i in $(seq 0 9); do muster batch script.sh $i; done)"],
  [["-d", "--dependency"], "run the jobs in order from one script (muster batch --wait, or steps of one batch job)"],
  [["--begin", "-H", "--hold"], "muster starts a job as soon as it fits; submit it when it should start"],
  [["-m", "--distribution"], "tasks are placed in blocks (Slurm's default block distribution); use -N and --ntasks-per-node to shape it"],
  [["--cpu-bind", "--mem-bind", "--hint", "-B", "--extra-node-info", "--sockets-per-node", "--cores-per-socket", "--threads-per-core", "--ntasks-per-core", "--ntasks-per-socket"], "muster does not bind tasks to cores, sockets or memory"],
  [["--mpi"], "muster starts the tasks and sets each one's rank (MUSTER_TASK_ID, SLURM_PROCID); it has no MPI plugins"],
  [["--exact", "--overlap"], "the steps of a batch job share its allocation's slots: a step may overlap the others"],
  [["--requeue", "--no-requeue"], "muster never requeues a job"],
  [["--signal"], "send a signal when you want it with muster kill JOB --signal SIG"],
  [["-i", "--input"], "tasks read /dev/null; give them a file instead (muster run -- sh -c 'cmd < FILE')"],
  [["--pty"], "muster tasks have no terminal; run interactive programs outside muster"],
  [["--multi-prog"], "run one program and branch on the rank (sh -c 'case $MUSTER_TASK_ID in 0) ...;; *) ...;; esac')"],
  [["--het-group", "--het-job"], "muster has no heterogeneous jobs; submit one job per component"],
  [["-I", "--immediate"], "muster queues a job until it fits; muster nodes shows what is free"],
  [["--comment"], "muster keeps no job comments; use -J/--job-name"],
  [["--test-only"], "muster has no dry run; muster nodes shows what is free"],
  [["--get-user-env"], "tasks get the submitting environment (see --export)"],
  [["-O", "--overcommit", "--mincpus", "--tmp", "--switches", "--container", "--propagate", "--uid", "--gid"], "muster has no such setting"],
];

const BY_FLAG: ReadonlyMap<string, string> = new Map(ANSWERS.flatMap(([flags, answer]) => flags.map((f) => [f, answer] as const)));

/** Commands whose unknown options are looked up among Slurm's (run: srun's, batch: sbatch's). */
const SLURM_COMMANDS: ReadonlySet<string> = new Set(["run", "batch"]);

/** Flags a command does not take, with the command that does (`--wrap` belongs to batch). */
const ELSEWHERE: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  run: {
    "--wrap": "sbatch's --wrap is muster batch --wrap CMD; in muster run give the command itself (muster run -- sh -c 'CMD')",
    "--parsable": "use muster batch --parsable",
    "--open-mode": "muster run's -o/-e files are truncated, as srun's default --open-mode=truncate",
  },
  batch: {
    "--open-mode": "a batch job's -o/-e files are appended to (sbatch's --open-mode=append)",
    "-k": "a node failure ends only the steps with tasks on it; give -k/--no-kill to each muster run in the script to keep a step running",
    "--no-kill": "a node failure ends only the steps with tasks on it; give -k/--no-kill to each muster run in the script to keep a step running",
  },
};

/**
 * The one-line answer for an option `command` does not know (`--mem`, `-c`), or undefined when it
 * is not a Slurm flag: `run: option --mem is not supported: muster does not track memory`.
 */
export function unsupportedSlurmFlag(command: string, flag: string): string | undefined {
  if (!SLURM_COMMANDS.has(command)) return undefined;
  const elsewhere = ELSEWHERE[command]?.[flag];
  if (elsewhere) return `${command}: option ${flag} is not a muster ${command} option: ${elsewhere}`;
  const answer = BY_FLAG.get(flag);
  if (!answer) return undefined;
  return `${command}: option ${flag} is not supported: ${answer}`;
}

/**
 * A Slurm user's scripts and fingers, the pure parts: hostlists, `#SBATCH`/`#MUSTER` directives,
 * `--export`, the defaults of a `muster run` inside a job, answers for Slurm flags muster lacks,
 * Slurm's task variables, and `-w/--nodelist` placement.
 */
import { describe, expect, it } from "vitest";
import { placeTasks, type CandidateNode } from "../../services/supervisor/placement.js";
import { parseArgs } from "../../src/cli/args.js";
import { directiveOptions, wrapScript } from "../../src/cli/commands/batch.js";
import { readDirectives } from "../../src/cli/directives.js";
import { unsupportedSlurmFlag } from "../../src/cli/slurm-flags.js";
import { chdirOption, exportedEnv, jobDefaults, nodelistOption } from "../../src/cli/slurm-options.js";
import { BATCH_OPTIONS, RUN_OPTIONS } from "../../src/cli/specs.js";
import { loadConfig } from "../../src/config.js";
import { MusterError } from "../../src/errors.js";
import { compressCounts, compressHostlist, expandHostlist } from "../../src/hostlist.js";
import { slurmLaunchVariables, slurmTaskVariables, urlWithoutSecrets, withoutSecrets } from "../../src/task-env.js";

/** The error a function throws, for asserting its code and message. */
function thrown(f: () => unknown): MusterError {
  try {
    f();
  } catch (err) {
    if (err instanceof MusterError) return err;
    throw err;
  }
  throw new Error("did not throw");
}

describe("hostlists", () => {
  it("compresses runs of a prefix and keeps the order", () => {
    expect(compressHostlist(["node-1", "node-2", "node-3"])).toBe("node-[1-3]");
    expect(compressHostlist(["n1", "n2", "n4", "login", "m7"])).toBe("n[1-2,4],login,m7");
    expect(compressHostlist(["n01", "n02", "n03"])).toBe("n[01-03]");
    expect(compressHostlist(["n9", "n10"])).toBe("n[9-10]");
    expect(compressHostlist(["n1", "n02"])).toBe("n1,n02");
    expect(compressHostlist(["solo"])).toBe("solo");
    expect(compressHostlist([])).toBe("");
  });

  it("expands what it compresses", () => {
    for (const names of [["node-1", "node-2", "node-3"], ["n01", "n02", "n10"], ["a", "b1", "b2", "c"], ["n9", "n10", "n11"]]) {
      expect(expandHostlist(compressHostlist(names))).toEqual(names);
    }
    expect(expandHostlist("n[1-3,5],login1,n2")).toEqual(["n1", "n2", "n3", "n5", "login1"]);
  });

  it("refuses a malformed list with one line naming it", () => {
    expect(thrown(() => expandHostlist("n[1-3")).message).toBe('bad node list "n[1-3": unbalanced brackets');
    expect(thrown(() => expandHostlist("n[3-1]")).message).toBe('bad node list "n[3-1]": range 3-1 runs backwards');
    expect(thrown(() => expandHostlist("n[a]")).message).toBe('bad node list "n[a]": "a" is not a number or a range');
    expect(thrown(() => expandHostlist("n1,,n2")).message).toBe('bad node list "n1,,n2": empty name');
    expect(thrown(() => expandHostlist("n[1-9999999]")).code).toBe("USAGE");
    expect(thrown(() => nodelistOption("run", "a.b")).message).toBe('run: option --nodelist: bad node list "a.b": "a.b" is not a node name');
  });

  it("compresses per-node counts as SLURM_TASKS_PER_NODE does", () => {
    expect(compressCounts([2, 2, 2, 1])).toBe("2(x3),1");
    expect(compressCounts([3, 1])).toBe("3,1");
    expect(compressCounts([4])).toBe("4");
  });
});

describe("#SBATCH and #MUSTER directives", () => {
  it("are read among the comments and blank lines at the top, as sbatch reads them", () => {
    const script = [
      "#!/bin/bash",
      "",
      "# a comment",
      "  #SBATCH -J indented-is-a-comment",
      "#SBATCH -n 2 # a trailing comment -n 3",
      '#SBATCH --job-name="a b"',
      "#MUSTER   -t 5",
      "#sbatch -J lower-case-is-a-comment",
      "#SBATCHX -J not-a-tag",
      "#SBATCH",
      "echo hello",
      "#SBATCH -n 9",
    ].join("\n");
    expect(readDirectives(script)).toEqual([
      { tag: "SBATCH", line: 5, args: ["-n", "2"] },
      { tag: "SBATCH", line: 6, args: ["--job-name=a b"] },
      { tag: "MUSTER", line: 7, args: ["-t", "5"] },
      { tag: "SBATCH", line: 10, args: [] },
    ]);
    expect(readDirectives("#!/bin/sh\r\n#SBATCH --job-name 'c d' -N 1\r\necho\r\n")).toEqual([{ tag: "SBATCH", line: 2, args: ["--job-name", "c d", "-N", "1"] }]);
  });

  it("give batch options: a later line wins, #MUSTER wins over #SBATCH", () => {
    const script = ["#!/bin/sh", "#MUSTER -n 3", "#SBATCH -n 4 -N 2", "#SBATCH -J first", "#SBATCH -J second --wait", "#SBATCH -o out-%j.txt", "true"].join("\n");
    expect(directiveOptions("job.sh", script)).toEqual({ ntasks: 3, nodes: 2, "job-name": "second", wait: true, output: "out-%j.txt" });
  });

  it("fail as on the command line, naming the line", () => {
    expect(thrown(() => directiveOptions("job.sh", "#!/bin/sh\n#SBATCH --mem=4G\n")).message).toBe(
      "batch: option --mem is not supported: muster does not track memory; a task can use what its node has (job.sh line 2: #SBATCH)",
    );
    expect(thrown(() => directiveOptions("job.sh", "#SBATCH --frobnicate\n")).message).toBe("batch: unknown option --frobnicate (job.sh line 1: #SBATCH)");
    expect(thrown(() => directiveOptions("job.sh", "#SBATCH -n four\n")).message).toBe('batch: option -n needs a whole number, not "four" (job.sh line 1: #SBATCH)');
    expect(thrown(() => directiveOptions("job.sh", "#MUSTER stray\n")).message).toBe('batch: unexpected argument "stray" (job.sh line 1: #MUSTER)');
    expect(thrown(() => directiveOptions("job.sh", "#MUSTER --server nats://x\n")).message).toBe("batch: option --server cannot be a directive (job.sh line 1: #MUSTER)");
    expect(thrown(() => directiveOptions("job.sh", '#SBATCH -J "open\n')).message).toBe('batch: job.sh line 1: unterminated " quote in a directive');
  });

  it("--wrap builds sbatch's script", () => {
    expect(wrapScript("echo hi")).toBe("#!/bin/sh\n# This script was created by muster batch --wrap.\n\necho hi\n");
  });
});

describe("Slurm flags muster lacks", () => {
  it("get a one-line answer, a usage error", () => {
    const e = thrown(() => parseArgs("run", ["-c", "4", "--", "true"], RUN_OPTIONS));
    expect([e.code, e.message]).toEqual(["USAGE", "run: option -c is not supported: a task takes one slot; to leave several cores to each task, start agents with fewer slots (muster agent --slots N)"]);
    expect(thrown(() => parseArgs("batch", ["--array=0-9", "job.sh"], BATCH_OPTIONS)).message).toMatch(/^batch: option --array is not supported: submit one job per index/);
    expect(thrown(() => parseArgs("batch", ["--dependency=afterok:3", "job.sh"], BATCH_OPTIONS)).message).toMatch(/^batch: option --dependency is not supported: /);
    expect(thrown(() => parseArgs("run", ["--wrap", "x"], RUN_OPTIONS)).message).toMatch(/^run: option --wrap is not a muster run option: sbatch's --wrap is muster batch --wrap CMD/);
    expect(thrown(() => parseArgs("run", ["-s", "--", "true"], RUN_OPTIONS)).message).toMatch(/^run: option -s is not supported: a slot holds one task; .*muster -s URL run/);
    expect(thrown(() => parseArgs("run", ["--open-mode=append", "--", "true"], RUN_OPTIONS)).message).toMatch(/^run: option --open-mode is not a muster run option: .*truncated/);
    expect(thrown(() => parseArgs("batch", ["-k", "job.sh"], BATCH_OPTIONS)).message).toMatch(/^batch: option -k is not a muster batch option: .*give -k\/--no-kill to each muster run/);
    for (const flag of ["--mem", "-p", "--partition", "-A", "--account", "--exclusive", "--gres", "--mail-type", "-x", "--exclude", "--cpus-per-task", "--pty", "--multi-prog", "-I", "-i", "--input"]) {
      expect(unsupportedSlurmFlag("run", flag), flag).toMatch(new RegExp(`^run: option ${flag} is not supported: .+`));
      expect(unsupportedSlurmFlag("batch", flag), flag).toMatch(new RegExp(`^batch: option ${flag} is not supported: .+`));
    }
  });

  it("leave other unknown options and other commands as they were", () => {
    expect(thrown(() => parseArgs("run", ["--frobnicate"], RUN_OPTIONS)).message).toBe("run: unknown option --frobnicate");
    expect(unsupportedSlurmFlag("nodes", "--mem")).toBeUndefined();
  });

  it("-D, --export, -w, -J, -u on run and --wrap, --parsable on batch are options", () => {
    const run = parseArgs("run", ["-D", "/tmp", "--export=NONE", "-w", "n[1-2]", "-J", "x", "-u", "--", "true"], RUN_OPTIONS, { stopAtPositional: true });
    expect(run.options).toEqual({ chdir: "/tmp", export: "NONE", nodelist: "n[1-2]", "job-name": "x", unbuffered: true });
    expect(parseArgs("batch", ["--wrap", "echo hi", "--parsable"], BATCH_OPTIONS).options).toEqual({ wrap: "echo hi", parsable: true });
    expect(chdirOption("/home/a", "sub")).toBe("/home/a/sub");
    expect(chdirOption("/home/a", "/srv")).toBe("/srv");
    expect(chdirOption("/home/a", undefined)).toBe("/home/a");
  });
});

describe("--export", () => {
  const env = { HOME: "/home/a", FOO: "1", NATS_URL: "nats://h:4222", NATS_PASSWORD: "pw", NATS_TOKEN: "tok", MUSTER_SYS_PASSWORD: "sys", MUSTER_JOB_ID: "7", SLURM_JOB_ID: "99", SLURMD_NODENAME: "n1" };

  it("ALL (the default) passes the environment but secrets, muster's task variables and Slurm's", () => {
    for (const spec of [undefined, "ALL"]) {
      expect(exportedEnv("run", spec, env)).toEqual({ env: { HOME: "/home/a", FOO: "1", NATS_URL: "nats://h:4222" }, envExport: "ALL" });
    }
  });

  it("NONE passes nothing; a list passes only its variables", () => {
    expect(exportedEnv("run", "NONE", env)).toEqual({ env: {}, envExport: "NONE" });
    expect(exportedEnv("run", "FOO,BAR=2,MISSING", env)).toEqual({ env: { FOO: "1", BAR: "2" }, envExport: "NONE" });
  });

  it("ALL with a list: the environment's value wins over a listed one (srun's rule)", () => {
    expect(exportedEnv("batch", "ALL,FOO=9,BAR=2", env).env).toEqual({ HOME: "/home/a", FOO: "1", NATS_URL: "nats://h:4222", BAR: "2" });
  });

  it("refuses secrets, task variables and malformed items", () => {
    expect(thrown(() => exportedEnv("run", "NATS_TOKEN", env)).message).toBe("run: option --export: NATS_TOKEN is a secret muster never passes to tasks");
    expect(thrown(() => exportedEnv("run", "SLURM_JOB_ID=3", env)).message).toBe("run: option --export: SLURM_JOB_ID is set by muster for each task");
    expect(thrown(() => exportedEnv("run", "NONE,FOO", env)).message).toBe("run: option --export: NONE takes no variables (--export=VAR,... exports only those)");
    expect(thrown(() => exportedEnv("run", "1BAD=x", env)).message).toBe('run: option --export: "1BAD=x" is not VAR or VAR=VALUE');
  });

  it("secrets are dropped from what is stored, and from URLs given to tasks", () => {
    expect(withoutSecrets({ A: "1", NATS_PASSWORD: "pw", NATS_TOKEN: "t", B: undefined })).toEqual({ A: "1" });
    expect(urlWithoutSecrets("nats://alice:pw@h1:4222,tls://tok@h2,nats://h3")).toBe("nats://alice@h1:4222,tls://h2,nats://h3");
  });
});

describe("muster run inside a job", () => {
  const inJob = { MUSTER_JOB_ID: "5", MUSTER_NTASKS: "4", MUSTER_NNODES: "2" };

  it("runs as many tasks as the allocation holds when -n is not given", () => {
    expect(jobDefaults({}, inJob)).toEqual({ ntasks: 4 });
    expect(jobDefaults({ nodes: 1 }, inJob)).toEqual({ nodes: 1, ntasks: 4 });
  });

  it("keeps -n and --ntasks-per-node as given, and changes nothing outside a job", () => {
    expect(jobDefaults({ ntasks: 2 }, inJob)).toEqual({ ntasks: 2 });
    expect(jobDefaults({ "ntasks-per-node": 1 }, inJob)).toEqual({ "ntasks-per-node": 1 });
    expect(jobDefaults({}, { MUSTER_NTASKS: "4" })).toEqual({});
    expect(jobDefaults({}, { MUSTER_JOB_ID: "5", MUSTER_NTASKS: "x" })).toEqual({});
  });
});

describe("Slurm's task variables", () => {
  const facts = {
    jobName: "train",
    jobNodeList: "node-[1-2]",
    jobNumNodes: 2,
    jobTasksPerNode: "3,1",
    stepNodeList: "node-1",
    stepTasksPerNode: "2",
    cpusOnNode: 3,
    submitDir: "/home/a",
    submitHost: "login1",
  };

  it("a step's task gets the step's counts and lists beside the job's", () => {
    expect({ ...slurmLaunchVariables({ job: "12", step: 1, user: "alice", node: "node-1", ntasks: 2, nnodes: 1, nodeIndex: 0, facts }), ...slurmTaskVariables(1, 1) }).toEqual({
      SLURM_JOB_ID: "12",
      SLURM_JOBID: "12",
      SLURM_JOB_NAME: "train",
      SLURM_JOB_USER: "alice",
      SLURM_JOB_NODELIST: "node-[1-2]",
      SLURM_NODELIST: "node-[1-2]",
      SLURM_JOB_NUM_NODES: "2",
      SLURM_JOB_CPUS_PER_NODE: "3,1",
      SLURM_CPUS_ON_NODE: "3",
      SLURM_NTASKS: "2",
      SLURM_NPROCS: "2",
      SLURM_NNODES: "1",
      SLURM_NODEID: "0",
      SLURMD_NODENAME: "node-1",
      SLURM_SUBMIT_DIR: "/home/a",
      SLURM_SUBMIT_HOST: "login1",
      SLURM_STEP_ID: "1",
      SLURM_STEPID: "1",
      SLURM_STEP_NUM_TASKS: "2",
      SLURM_STEP_NUM_NODES: "1",
      SLURM_STEP_NODELIST: "node-1",
      SLURM_STEP_TASKS_PER_NODE: "2",
      SLURM_TASKS_PER_NODE: "2",
      SLURM_PROCID: "1",
      SLURM_LOCALID: "1",
    });
  });

  it("a batch script gets the job's, and no step variables", () => {
    const env = slurmLaunchVariables({ job: "12", step: "batch", user: "alice", node: "node-1", ntasks: 4, nnodes: 2, nodeIndex: 0, facts });
    expect(env.SLURM_NTASKS).toBe("4");
    expect(env.SLURM_NNODES).toBe("2");
    expect(env.SLURM_TASKS_PER_NODE).toBe("3,1");
    expect(Object.keys(env).filter((k) => k.startsWith("SLURM_STEP"))).toEqual([]);
  });

  it("MUSTER_SLURM_ENV turns them off", () => {
    expect(loadConfig({ MUSTER_USER: "a" }).slurmEnv).toBe(true);
    expect(loadConfig({ MUSTER_USER: "a", MUSTER_SLURM_ENV: "0" }).slurmEnv).toBe(false);
    expect(() => loadConfig({ MUSTER_USER: "a", MUSTER_SLURM_ENV: "maybe" })).toThrow(/MUSTER_SLURM_ENV/);
  });
});

describe("-w/--nodelist placement", () => {
  const nodes: CandidateNode[] = ["node-1", "node-2", "node-3"].map((node) => ({ node, epoch: "e", slots: 4 }));

  it("places on exactly the named nodes, spread over them", () => {
    expect(placeTasks({ ntasks: 2, nodelist: ["node-2"] }, nodes)).toEqual([{ node: "node-2", epoch: "e", ranks: "0-1" }]);
    expect(placeTasks({ ntasks: 3, nodelist: ["node-3", "node-1"] }, nodes)).toEqual([
      { node: "node-1", epoch: "e", ranks: "0-1" },
      { node: "node-3", epoch: "e", ranks: "2" },
    ]);
  });

  it("waits when a named node is not there or full, and refuses shapes it cannot hold", () => {
    expect(placeTasks({ ntasks: 1, nodelist: ["node-9"] }, nodes)).toBeUndefined();
    expect(placeTasks({ ntasks: 5, nodelist: ["node-1"] }, nodes)).toBeUndefined();
    expect(() => placeTasks({ ntasks: 1, nodelist: ["node-1", "node-2"] }, nodes)).toThrow("--nodelist names 2 nodes, more than the 1 tasks asked for");
    expect(() => placeTasks({ ntasks: 4, nodes: 3, nodelist: ["node-1", "node-2"] }, nodes)).toThrow("-N 3 differs from the 2 nodes named by --nodelist");
  });
});

// The agent's per-task Perl launcher (the fallback when no launcher server runs) and task process, without NATS: the embedded source matches
// launcher.pl, tasks start with default dispositions and an empty mask whatever perl inherited,
// the raw wait status comes through losslessly, and /dev/stdout works in a task.
import { readFileSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IoStream } from "../../src/protocol/index.js";
import { LAUNCHER_SERVER_SOURCE, LAUNCHER_SOURCE, PERL_PATH, incompleteUtf8Tail, launcherEnv, startTaskProcess } from "../../services/agent/index.js";
import type { TaskExit } from "../../services/agent/index.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "muster-launcher-test-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(argv: string[], opts: { perlPath?: string; env?: Record<string, string> } = {}): Promise<TaskExit & { started?: number; out: Record<IoStream, string> }> {
  const out: Record<IoStream, string> = { stdout: "", stderr: "" };
  let started: number | undefined;
  const proc = startTaskProcess({
    argv,
    cwd: dir,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...opts.env },
    ...(opts.perlPath ? { perlPath: opts.perlPath } : {}),
    onStarted: (pid) => (started = pid),
    onOutput: (stream, data) => {
      out[stream] += data.toString("utf8");
    },
  });
  const exit = await proc.done;
  return { ...exit, ...(started === undefined ? {} : { started }), out };
}

describe("agent launcher", () => {
  it("embeds launcher.pl and launcher-server.pl verbatim", () => {
    const file = readFileSync(join(repoRoot, "services/agent/launcher.pl"), "utf8");
    expect(LAUNCHER_SOURCE, "services/agent/launcher-source.ts must hold launcher.pl line by line").toBe(file);
    const server = readFileSync(join(repoRoot, "services/agent/launcher-server.pl"), "utf8");
    expect(LAUNCHER_SERVER_SOURCE, "services/agent/launcher-source.ts must hold launcher-server.pl line by line").toBe(server);
  });

  it("resets an ignored SIGINT and a blocked SIGTERM inherited by perl", async () => {
    // A perl that starts the launcher with INT ignored and INT+TERM blocked, as a careless parent would.
    const wrapper = join(dir, "hostile-perl");
    await writeFile(
      wrapper,
      `#!${PERL_PATH}\nuse POSIX ();\n$SIG{INT} = 'IGNORE';\nPOSIX::sigprocmask(POSIX::SIG_BLOCK(), POSIX::SigSet->new(2, 15));\nexec { '${PERL_PATH}' } 'perl', @ARGV;\n`,
    );
    await chmod(wrapper, 0o755);
    const int = await run(["sh", "-c", "kill -INT $$; echo survived"], { perlPath: wrapper });
    expect(int.outcome).toEqual({ kind: "signaled", signal: 2, coreDumped: false });
    expect(int.out.stdout).toBe("");
    const term = await run(["sh", "-c", "kill -TERM $$; echo survived"], { perlPath: wrapper });
    expect(term.outcome).toEqual({ kind: "signaled", signal: 15, coreDumped: false });
    // Shown to be meaningful: the same hostile parent without the launcher leaves INT ignored.
    const direct = await run([wrapper, "-e", 'exec "sh", "-c", "kill -INT \\$\\$; echo survived"']);
    expect(direct.outcome).toEqual({ kind: "exited", code: 0 });
    expect(direct.out.stdout).toBe("survived\n");
  });

  it("reports the raw status: exit codes, signals, the task's own pid; real pipes for /dev/stdout", async () => {
    const r = await run(["sh", "-c", "echo out >/dev/stdout; echo err >/dev/stderr; echo $$; exit 7"]);
    expect(r.outcome).toEqual({ kind: "exited", code: 7 });
    expect(r.out).toEqual({ stdout: `out\n${r.pid}\n`, stderr: "err\n" });
    expect(r.started).toBe(r.pid);
    expect((await run(["sh", "-c", "kill -KILL $$"])).outcome).toEqual({ kind: "signaled", signal: 9, coreDumped: false });
    expect((await run(["sh", "-c", "kill -USR2 $$"])).outcome).toEqual({ kind: "signaled", signal: 12, coreDumped: false });
  });

  it("keeps PERL* variables away from the launcher but gives them to the task", async () => {
    expect(launcherEnv({ PERL5OPT: "-Mwarnings", A: "1" })).toEqual({ MUSTER_LAUNCHER_KEEP_PERL5OPT: "-Mwarnings", A: "1", PERL_BADLANG: "0" });
    const r = await run(["sh", "-c", 'echo "$PERL5OPT|$PERL_BADLANG|${MUSTER_LAUNCHER_KEEP_PERL5OPT-unset}"'], {
      env: { PERL5OPT: "-MNo::Such::Module", LANG: "xx_XX.bogus", LC_ALL: "xx_XX.bogus" },
    });
    expect(r.outcome).toEqual({ kind: "exited", code: 0 });
    expect(r.out).toEqual({ stdout: "-MNo::Such::Module||unset\n", stderr: "" });
  });

  it("finds where an incomplete UTF-8 character starts", () => {
    const e = Buffer.from("é"); // c3 a9
    expect(incompleteUtf8Tail(Buffer.from("abc"))).toBe(3);
    expect(incompleteUtf8Tail(Buffer.concat([Buffer.from("ab"), e.subarray(0, 1)]))).toBe(2);
    expect(incompleteUtf8Tail(Buffer.concat([Buffer.from("ab"), e]))).toBe(4);
    expect(incompleteUtf8Tail(Buffer.from("€").subarray(0, 2))).toBe(0);
    expect(incompleteUtf8Tail(Buffer.from([0x61, 0xff]))).toBe(2);
  });
});

/**
 * What the built `muster` binary loads before it answers (issue #6: `muster --help` in at most
 * 150 ms). Help, the version and usage errors come from the option specs alone: no zod, NATS, pino,
 * xstate or service code. `muster run` loads the protocol and NATS but no chart, machine or service
 * code. A resolve hook, registered with `--import` before the binary starts, logs every module URL.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MUSTER_BIN } from "../support/cluster.js";

const dataUrl = (source: string) => `data:text/javascript,${encodeURIComponent(source)}`;

/** Runs in the loader thread; appends synchronously, so the log is complete when the process exits. */
const HOOKS = `
import { appendFileSync } from "node:fs";
let log;
export function initialize(data) { log = data.log; }
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(log, r.url + "\\n");
  return r;
}`;

const REGISTER = `import { register } from "node:module";
register(${JSON.stringify(dataUrl(HOOKS))}, import.meta.url, { data: { log: process.env.MUSTER_TEST_MODULE_LOG } });`;

/** Packages and code a help or usage answer must not load. */
const HEAVY = /\/node_modules\/(zod|@nats-io\/[^/]+|pino|pino-pretty|xstate)\/|\/dist\/(services|machines|src\/charts|src\/protocol\/(?!error-codes\.js))/;

let dir: string;
let runs = 0;

beforeAll(() => {
  if (!existsSync(resolve(import.meta.dirname, "../../dist/src/cli/main.js"))) throw new Error("dist/ is missing: run `npm run build` before the e2e tests");
  dir = mkdtempSync(join(tmpdir(), "muster-startup-"));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs the binary with the hook; resolves with its exit status and the URL of every module it resolved. */
function loadedModules(args: readonly string[], killAfterMs?: number): Promise<{ code: number | null; stderr: string; urls: string[] }> {
  const log = join(dir, `modules-${++runs}.txt`);
  const p = spawn(process.execPath, ["--import", dataUrl(REGISTER), MUSTER_BIN, ...args], {
    // Nothing listens on port 1: a command that connects fails at once.
    env: { ...process.env, MUSTER_TEST_MODULE_LOG: log, NATS_URL: "nats://127.0.0.1:1", NATS_TIMEOUT: "1" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  p.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  // A service keeps trying to connect: stop it once it has had the time to load what it runs with.
  const timer = killAfterMs === undefined ? undefined : setTimeout(() => p.kill("SIGKILL"), killAfterMs);
  return new Promise((done, fail) => {
    p.once("error", fail);
    p.once("close", (code) => {
      clearTimeout(timer);
      done({ code, stderr, urls: existsSync(log) ? readFileSync(log, "utf8").split("\n").filter(Boolean) : [] });
    });
  });
}

describe("help, the version and usage errors load only the option specs", () => {
  const cases: [string[], number][] = [
    [["--help"], 0],
    [["-h"], 0],
    [[], 2],
    [["--version"], 0],
    [["run", "--help"], 0],
    [["history", "--help"], 0],
    [["up", "--help"], 0],
    [["inspect", "-h"], 0],
    [["bogus"], 2],
    [["run", "--bogus", "--", "true"], 2],
    [["nodes", "--timeout", "soon"], 2],
  ];
  for (const [args, status] of cases) {
    it(`muster ${args.join(" ")}`, async () => {
      const r = await loadedModules(args);
      expect(r.code, r.stderr).toBe(status);
      // The hook saw the binary's own modules (so an empty log cannot pass for a light one).
      expect(r.urls.some((u) => u.endsWith("/dist/src/cli/specs.js"))).toBe(true);
      expect(r.urls.filter((u) => HEAVY.test(u))).toEqual([]);
    });
  }
});

describe("a command loads what it runs with, and no more", () => {
  it("muster run: the protocol (zod) and NATS, but no charts, machines, xstate, pino or services", async () => {
    const r = await loadedModules(["run", "--", "true"]);
    expect(r.stderr).toMatch(/cannot connect to NATS/);
    expect(r.code).toBe(1);
    expect(r.urls.some((u) => u.includes("/node_modules/zod/"))).toBe(true);
    expect(r.urls.some((u) => u.includes("/node_modules/@nats-io/transport-node/"))).toBe(true);
    expect(r.urls.filter((u) => /\/node_modules\/(pino|pino-pretty|xstate)\/|\/dist\/(services|machines|src\/charts)\//.test(u))).toEqual([]);
  });

  it("muster agent: the agent, but not the supervisor, the inspector, the machines or xstate", async () => {
    const r = await loadedModules(["agent", "--node", "n1"], 4000);
    expect(r.urls.some((u) => u.includes("/dist/services/agent/agent.service.js"))).toBe(true);
    expect(r.urls.filter((u) => /\/node_modules\/xstate\/|\/dist\/(services\/(supervisor|inspector)|machines|src\/charts)\//.test(u))).toEqual([]);
  });

  it("muster chart task: the state charts and xstate", async () => {
    const r = await loadedModules(["chart", "task"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.urls.some((u) => u.includes("/node_modules/xstate/"))).toBe(true);
  });
});

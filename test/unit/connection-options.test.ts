/**
 * Connection options before and after the command name, the `nats` CLI's contexts, and the
 * settings they resolve to (flag over environment over context over default).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { connectionFlags, parseArgs, parseGlobalArgs } from "../../src/cli/args.js";
import { HISTORY_OPTIONS } from "../../src/cli/specs.js";
import { loadConfig } from "../../src/config.js";
import { natsOptions } from "../../src/nats/connect.js";
import { readNatsContext } from "../../src/nats/context.js";

const home = mkdtempSync(join(tmpdir(), "muster-ctx-"));
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe("parseGlobalArgs", () => {
  it("takes connection options up to the command name and leaves the rest", () => {
    expect(parseGlobalArgs(["-s", "nats://a:1", "--creds=/c", "--context", "lab", "history", "-s", "FAILED"])).toEqual({
      options: { server: "nats://a:1", creds: "/c", context: "lab" },
      rest: ["history", "-s", "FAILED"],
    });
    expect(parseGlobalArgs(["-snats://a:1", "nodes"]).options).toEqual({ server: "nats://a:1" });
  });

  it("refuses anything but a connection option before the command", () => {
    expect(() => parseGlobalArgs(["--json", "nodes"])).toThrow("muster: unknown option --json");
    expect(() => parseGlobalArgs(["-s"])).toThrow("muster: option -s needs a value");
  });

  it("after the command name, the command's own short option wins", () => {
    expect(parseArgs("history", ["-s", "FAILED"], HISTORY_OPTIONS).options).toEqual({ state: "FAILED" });
    expect(parseArgs("nodes", ["-s", "nats://b:2"], []).options).toEqual({ server: "nats://b:2" });
  });
});

describe("readNatsContext", () => {
  const dir = join(home, ".config", "nats");
  mkdirSync(join(dir, "context"), { recursive: true });
  writeFileSync(join(dir, "context", "lab.json"), JSON.stringify({ description: "x", url: "nats://lab:4222", creds: "~/lab.creds", user: "", password: "~/not-a-path", jetstream_domain: "hub" }));
  writeFileSync(join(dir, "context", "broken.json"), "{");
  const env = { HOME: home };

  it("reads the named context's fields as settings, expanding ~/ in file paths only", () => {
    expect(readNatsContext("lab", env)).toEqual({
      name: "lab",
      file: join(dir, "context", "lab.json"),
      settings: { natsUrl: "nats://lab:4222", natsCreds: join(home, "lab.creds"), natsPassword: "~/not-a-path" },
    });
    expect(readNatsContext(undefined, { ...env, NATS_CONTEXT: "lab" })?.name).toBe("lab");
  });

  it("uses the selected context only when one is selected", () => {
    expect(readNatsContext(undefined, env)).toBeUndefined();
    writeFileSync(join(dir, "context.txt"), "lab\n");
    expect(readNatsContext(undefined, env)?.settings.natsUrl).toBe("nats://lab:4222");
    expect(readNatsContext(undefined, { HOME: home, XDG_CONFIG_HOME: join(home, "elsewhere") })).toBeUndefined();
    rmSync(join(dir, "context.txt"));
  });

  it("a context that cannot be read is a CONFIG error naming it", () => {
    expect(() => readNatsContext("nope", env)).toThrow(`cannot read NATS context "nope" (${join(dir, "context", "nope.json")}): no such context`);
    expect(() => readNatsContext("broken", env)).toThrow(/cannot read NATS context "broken"/);
    expect(() => readNatsContext("../etc", env)).toThrow('bad NATS context name "../etc"');
  });

  it("flags over environment over context over defaults", () => {
    const ctx = readNatsContext("lab", env)!;
    expect(loadConfig({}, {}, ctx).natsUrl).toBe("nats://lab:4222");
    expect(loadConfig({ NATS_URL: "nats://env:1" }, {}, ctx).natsUrl).toBe("nats://env:1");
    const { context: _c, ...flags } = connectionFlags({ server: "nats://flag:1" });
    expect(loadConfig({ NATS_URL: "nats://env:1" }, flags, ctx).natsUrl).toBe("nats://flag:1");
    expect(loadConfig({}, {}, ctx).natsCreds).toBe(join(home, "lab.creds"));
    expect(() => loadConfig({}, {}, { name: "lab", settings: { natsUrl: "" as string, timeoutSeconds: "soon" } })).toThrow(/bad setting timeoutSeconds of NATS context "lab"/);
  });
});

describe("natsOptions", () => {
  it("a tls:// URL demands TLS; a nats:// URL alone does not", () => {
    expect(natsOptions(loadConfig({ NATS_URL: "tls://a:4222" }), { name: "t" }).tls).toEqual({ certFile: undefined, keyFile: undefined, caFile: undefined });
    expect(natsOptions(loadConfig({ NATS_URL: "nats://a:4222" }), { name: "t" }).tls).toBeUndefined();
  });

  it("MUSTER_SUPERVISOR_WAIT: short by default, the request timeout inside a job", () => {
    expect(loadConfig({}).supervisorWaitSeconds).toBe(0.3);
    expect(loadConfig({ MUSTER_JOB_ID: "4" }).supervisorWaitSeconds).toBe(5);
    expect(loadConfig({ MUSTER_JOB_ID: "4", NATS_TIMEOUT: "9" }).supervisorWaitSeconds).toBe(9);
    expect(loadConfig({ MUSTER_JOB_ID: "4", MUSTER_SUPERVISOR_WAIT: "1" }).supervisorWaitSeconds).toBe(1);
  });
});

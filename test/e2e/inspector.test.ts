/**
 * `muster inspect` end to end in headless Chromium (Debian's /usr/bin/chromium driven by
 * playwright-core): a real nats-server, supervisor and agents; the inspector started through the
 * built binary; the page followed live, scrubbed through its replay, and loaded for a
 * 10,000-task step driven by the load-generating agent of test/bench (no real processes).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReplySchema, createSubjects, encodeMessage, parseMessage } from "../../src/protocol/index.js";
import { benchSubject, startPeer, type Peer } from "../bench/lib.js";
import { startCluster, type Cluster, type RunningCommand } from "../support/cluster.js";
import { waitFor } from "../support/wait.js";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
// Screenshots go to docs/img only when asked (MUSTER_UPDATE_SCREENSHOTS=1), so a test run leaves the checkout clean.
const IMG = process.env.MUSTER_UPDATE_SCREENSHOTS === "1" ? resolve(import.meta.dirname, "../../docs/img") : mkdtempSync(join(tmpdir(), "muster-inspector-img-"));

// Functions passed to page.evaluate run in the page; the project's types have no DOM library.
declare const document: any;
declare const location: any;

let c: Cluster;
let inspector: RunningCommand;
let url: string;
let profile: string;
let browser: BrowserContext;
let page: Page;
const outside: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/provision.sh as root (npm test does), or apt-get install -y chromium (the tests never download a browser)`);
  // A generous node timeout: the load generator's heartbeats must survive its own 10,000-event storms on 2 cores.
  c = await startCluster({ agents: 2, slots: 4, env: { MUSTER_NODE_TIMEOUT: "10" } });
  inspector = c.start(["inspect", "--port", "0"]);
  url = await waitFor(() => /^(http:\/\/\S+)$/m.exec(inspector.stdout())?.[1], { timeoutMs: 20_000, message: `inspector URL on stdout\n${inspector.stderr()}` });
  profile = mkdtempSync(join(tmpdir(), "muster-chromium-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1440, height: 1000 },
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  // Every request the page makes must stay on the inspector.
  page.on("request", (r) => {
    if (!r.url().startsWith(url) && !r.url().startsWith("data:")) outside.push(r.url());
  });
  page.on("pageerror", (e) => outside.push(`page error: ${e.message}`));
}, 90_000);

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  if (profile) rmSync(profile, { recursive: true, force: true });
  inspector?.proc.kill("SIGTERM");
  await inspector?.done;
  await c?.stop();
});

/** Reads an SSE stream's `data` payloads until `until` holds (or the timeout). */
async function readSse(u: string, until: (events: any[]) => boolean, timeoutMs = 15_000): Promise<any[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  const out: any[] = [];
  try {
    const res = await fetch(u, { signal: ac.signal });
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = "";
    while (!until(out)) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
        const data = buf.slice(0, i).split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        buf = buf.slice(i + 2);
        if (data) out.push(JSON.parse(data));
      }
    }
  } catch (err) {
    if (!ac.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return out;
}

let firstJob: string | undefined;

function jobIdOf(stderr: string): string | undefined {
  return /muster: job (\S+):/.exec(stderr)?.[1];
}

/** The coarse state (`pending`, `running`, `failed`, `ok` …) the grid shows for each rank. */
function rankStates(p: Page): Promise<string[]> {
  return p.$$eval("#grid-canvas li[data-rank]", (els) => els.map((e: any) => e.dataset.rankState ?? ""));
}

describe("muster inspect", () => {
  it("shows a job live (list, charts, grid, notification) and replays its recorded events", async () => {
    await page.goto(url);
    await page.locator("#conn[data-connected='1']").waitFor({ timeout: 10_000 });
    const run = c.start(["run", "-v", "-n", "4", "--", "sh", "-c", '[ $MUSTER_TASK_ID = 3 ] && exit 5; sleep 3; exit 0']);
    const job = await waitFor(() => jobIdOf(run.stderr()), { timeoutMs: 15_000, message: "job id on stderr" });
    firstJob = job;

    // The job appears in the list from the live stream, without reloading the page.
    const row = page.locator(`#jobs tr[data-job="${job}"]`);
    await row.waitFor({ timeout: 10_000 });
    await row.click();
    await page.locator(`#detail[data-job="${job}"]`).waitFor();

    // Rank 3 failed while the others still run; the first-failure notification is shown.
    const seen: string[] = [];
    await waitFor(
      async () => {
        const s = await rankStates(page);
        if (seen.at(-1) !== s.join(",")) seen.push(s.join(","));
        return s.length === 4 && s[3] === "failed" && s.slice(0, 3).every((x) => x === "running");
      },
      { timeoutMs: 10_000, intervalMs: 50 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}; the grid showed, in turn: ${seen.join(" | ")}; run stderr:\n${run.stderr()}`);
    });
    await page.locator("#notice[data-trigger-rank='3']").waitFor({ timeout: 10_000 });
    expect(await page.locator("#notice").innerText()).toMatch(/task 3 on node-\d+ exited with code 5/);
    // The notification is the step's picture when rank 3 ended (a rank may still have been launching).
    expect(await page.locator("#notice pre").innerText()).toMatch(/exited 5\s+task 3/);
    expect(await page.locator("[data-chart='job']").getAttribute("data-active")).toBe("running");
    // One task ended while the others run: RUNNING, as in Slurm (COMPLETING is a step being stopped).
    expect(await page.locator("[data-chart='step']").getAttribute("data-active")).toBe("running");
    await page.locator("[data-chart='step'] g.state.active[data-state='running']").waitFor();
    mkdirSync(IMG, { recursive: true });
    await page.screenshot({ path: join(IMG, "inspector-job.png"), fullPage: true });

    // Then the job completes: FAILED in the list and in the view, every rank final.
    const r = await run.done;
    expect(r.code, r.stderr).toBe(5);
    await page.locator(`#jobs tr[data-job="${job}"][data-state="FAILED"]`).waitFor({ timeout: 10_000 });
    await page.locator("#detail[data-state='FAILED']").waitFor({ timeout: 10_000 });
    await page.waitForFunction(() => document.querySelector("#grid-canvas li[data-rank='0']")?.getAttribute("data-rank-state") === "ok", undefined, { timeout: 10_000 });
    expect(await rankStates(page)).toEqual(["ok", "ok", "ok", "failed"]);
    await page.locator("[data-chart='job'][data-active='failed']").waitFor();

    // Scrub to the first event: the job as submitted, every task pending.
    const total = Number(await page.locator("#scrubber").getAttribute("max")) + 1;
    expect(total).toBe(1 + 1 + 8); // submission, launch, a start and an end per task
    await page.locator("#scrubber").fill("0");
    await page.locator("#grid-canvas[data-mode='replay'][data-at='0']").waitFor({ timeout: 10_000 });
    expect(await rankStates(page)).toEqual(["pending", "pending", "pending", "pending"]);
    expect(await page.locator("#replay-banner").getAttribute("data-job-state")).toBe("pending");
    await page.locator("[data-chart='step'][data-active='pending']").waitFor();

    // The last event: the replay reaches the verdict the supervisor published.
    await page.locator("#scrubber").fill(String(total - 1));
    await page.locator(`#grid-canvas[data-mode='replay'][data-at='${total - 1}']`).waitFor({ timeout: 10_000 });
    expect(await rankStates(page)).toEqual(["ok", "ok", "ok", "failed"]);
    expect(await page.locator("#replay-banner").getAttribute("data-job-state")).toBe("failed");
    expect(await page.locator("#replay-banner").getAttribute("data-step-state")).toBe("failed");

    // The event where rank 3 ended, with its task view open: its chart lit, its events listed.
    const events = (await (await fetch(`${url}api/jobs/${job}/timeline?step=0&rank=3`)).json()) as { inputs: { index: number; kind: string; type?: string }[] };
    const failedAt = events.inputs.find((i) => i.type === "task.ended")!.index;
    await page.locator(`#timeline tr[data-index='${failedAt}']`).click();
    await page.locator(`#grid-canvas[data-at='${failedAt}']`).waitFor({ timeout: 10_000 });
    expect((await rankStates(page))[3]).toBe("failed");
    await page.evaluate((j) => (location.hash = `#/jobs/${j}/steps/0/tasks/3`), job);
    await page.locator("#task[data-rank='3'][data-task-state='exited']").waitFor({ timeout: 10_000 });
    await page.locator("[data-chart='task'] g.state.active[data-state='exited']").waitFor({ timeout: 10_000 });
    await page.locator("#task-events tr", { hasText: /task\.ended step 0 rank 3 on node-\d+: exited with code 5/ }).waitFor({ timeout: 10_000 });
    expect(await page.locator("#replay-banner").innerText()).toMatch(/first failure: task 3 exited with code 5/);
    await page.screenshot({ path: join(IMG, "inspector-scrub.png"), fullPage: true });

    expect(outside).toEqual([]);
  }, 60_000);

  it("with --stately, serves the job's actors as Stately inspection events on /stately", async () => {
    expect(firstJob).toBeDefined();
    const stately = c.start(["inspect", "--port", "0", "--stately"]);
    try {
      const base = await waitFor(() => /^(http:\/\/\S+)$/m.exec(stately.stdout())?.[1], { timeoutMs: 20_000, message: "inspector URL" });
      const isVerdict = (e: any) => e.type === "@xstate.snapshot" && e.snapshot?.value === "failed" && e.snapshot?.context?.step === "0";
      const events = await readSse(`${base}stately?job=${firstJob}`, (evs) => evs.some(isVerdict));
      const actors = events.filter((e) => e.type === "@xstate.actor");
      expect(actors.map((a) => a.name).sort()).toEqual([`job-${firstJob}`, `step-${firstJob}.0`]);
      for (const a of actors) expect(JSON.parse(a.definition).id).toMatch(/^(job|step)$/);
      expect(events.find(isVerdict).snapshot.context).toMatchObject({ tasks: { size: 4 }, end: { state: "FAILED", exitCode: "5:0" } });
      const jobSnap = events.filter((e) => e.type === "@xstate.snapshot" && e.sessionId === actors.find((a) => a.name === `job-${firstJob}`).sessionId).at(-1);
      expect(jobSnap.snapshot.value).toBe("failed");
      // Off by default.
      expect((await fetch(`${url}stately`)).status).toBe(404);
    } finally {
      stately.proc.kill("SIGTERM");
      await stately.done;
    }
  });

  it("loads a 10,000-task step (load-generating agent) and reports the time until interactive", async () => {
    const runId = `insp${process.pid}`;
    const nodes = "load-1"; // sorts before node-1, so `-N 1` places the step here
    const loadgen: Peer = startPeer("loadgen", ["--import", "tsx", "test/bench/loadgen-agent.ts"], {
      NATS_URL: c.nats.url,
      MUSTER_PREFIX: c.prefix,
      BENCH_RUN_ID: runId,
      BENCH_NODES: nodes,
      BENCH_SLOTS: "10000",
      BENCH_WINDOW: "512",
      MUSTER_HEARTBEAT_INTERVAL: "0.5",
    });
    const nc: NatsConnection = await connect({ servers: c.nats.url });
    try {
      await loadgen.waitLine(/loadgen ready/, 30_000);
      await c.waitNodes(3);
      const s = createSubjects(c.prefix);
      const submitted = Date.now();
      const reply = await nc.request(
        s.ctl.submit("alice"),
        encodeMessage({ type: "submit", v: 1, user: "alice", name: "load-10k", argv: ["true"], ntasks: 10_000, nodes: 1, label: false, killOnBadExit: false }),
        { timeout: 30_000 },
      );
      const parsed = parseMessage(ReplySchema, reply.data, "submit");
      if (!parsed.ok || !parsed.value.ok) throw new Error(`submit failed: ${JSON.stringify(parsed)}`);
      const job = (parsed.value.data as { job: string }).job;
      const lg = async (op: string, body: unknown) => JSON.parse(new TextDecoder().decode((await nc.request(benchSubject(runId, "lg", op), JSON.stringify(body), { timeout: 120_000 })).data));
      const launched = await lg("launched", { job, ntasks: 10_000 });
      expect(launched.ok, JSON.stringify(launched)).toBe(true);
      const started = Date.now();

      // Time until interactive: a fresh tab loading the job's page until its 10,000 cells are drawn.
      const big = await browser.newPage();
      big.on("request", (r) => {
        if (!r.url().startsWith(url) && !r.url().startsWith("data:")) outside.push(r.url());
      });
      const t0 = Date.now();
      await big.goto(`${url}#/jobs/${job}`);
      await big.locator("#grid-canvas[data-drawn='10000']").waitFor({ timeout: 30_000 });
      const tti = Date.now() - t0;
      const jobView = Number(await big.evaluate((j) => performance.getEntriesByType("resource").filter((e) => e.name.endsWith(`/api/jobs/${j}`)).map((e) => e.duration).at(-1) ?? -1, job));
      expect(await big.locator("#grid-canvas").getAttribute("data-ntasks")).toBe("10000");

      // Every task ends (rank 5,000 with code 5); the page follows to the verdict.
      const exitAt = Date.now();
      const exit = await lg("exit", { job, failAt: 0.5, failCode: 5 });
      expect(exit.ok, JSON.stringify(exit)).toBe(true);
      const published = Date.now();
      // When the supervisor itself had the verdict, to tell its time from the page's.
      const verdict = waitFor(
        async () => {
          const r = await nc.request(s.ctl.query("alice"), encodeMessage({ type: "query", v: 1, what: "history" }), { timeout: 10_000 });
          const q = parseMessage(ReplySchema, r.data, "query");
          return q.ok && q.value.ok && (q.value.data as { jobId: string }[]).some((v) => v.jobId === job) ? Date.now() : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 100, message: "the supervisor's verdict" },
      );
      await big.locator("#detail[data-state='FAILED']").waitFor({ timeout: 60_000 }).catch((err: Error) => {
        throw new Error(`${err.message}\ninspector log tail:\n${inspector.stderr().split("\n").slice(-40).join("\n")}`);
      });
      const ended = Date.now();
      const decided = await verdict;
      await big.waitForFunction(() => JSON.parse(document.querySelector("#grid-canvas").dataset.groups ?? "{}")["exited:5"] === "5000", undefined, { timeout: 30_000 });

      // Scrubbing a 20,002-input replay: the first request replays everything once, later ones start from checkpoints.
      const max = 20_001;
      await big.locator(`#scrubber[max='${max}']`).waitFor({ state: "attached", timeout: 30_000 }).catch(async (err: Error) => {
        const t = (await (await fetch(`${url}api/jobs/${job}/timeline?around=0&limit=1`)).json()) as { total: number };
        const where = await big.locator("#where").innerText();
        const problem = await big.locator("#problem").innerText();
        const ranges = await big.evaluate(() => [...document.querySelectorAll("input[type=range]")].map((e: any) => `${e.id} max=${e.getAttribute("max")} value=${e.value}`));
        throw new Error(`${err.message}\ntimeline API total ${t.total}; page: "${where}", problem "${problem}", ranges ${ranges.join("; ")}\ninspector log tail:\n${inspector.stderr().split("\n").slice(-40).join("\n")}`);
      });
      const scrub = async (at: number) => {
        const t = Date.now();
        await big.locator("#scrubber").fill(String(at));
        await big.locator(`#grid-canvas[data-mode='replay'][data-at='${at}']`).waitFor({ timeout: 30_000 });
        return Date.now() - t;
      };
      const firstScrub = await scrub(max);
      const midScrub = await scrub(Math.floor(max / 2));
      const startScrub = await scrub(0);
      const apiMs = async (at: number) => {
        const t = performance.now();
        const res = await fetch(`${url}api/jobs/${job}/replay?at=${at}`);
        expect(res.status).toBe(200);
        await res.arrayBuffer();
        return Math.round(performance.now() - t);
      };
      const replayApi = [await apiMs(12_345), await apiMs(777), await apiMs(max)];
      expect(new Set(await big.$$eval("#legend [data-key]", (els) => els.map((e: any) => e.dataset.key)))).toEqual(new Set(["pending"]));
      console.log(
        `inspector, 10,000-task step: time until interactive ${tti} ms (job view fetch ${Math.round(jobView)} ms); ` +
          `launch+start of 10,000 tasks ${started - submitted} ms; 10,000 ends published in ${published - exitAt} ms, FAILED at the supervisor after ${decided - exitAt} ms and on the page after ${ended - exitAt} ms; ` +
          `scrub to the last of ${max + 1} inputs ${firstScrub} ms (first replay), to the middle ${midScrub} ms, to the start ${startScrub} ms; ` +
          `replay API alone ${replayApi.join("/")} ms`,
      );
      expect(outside).toEqual([]);
      await big.close();
    } finally {
      await nc.close();
      await loadgen.stop();
    }
  }, 90_000);
});

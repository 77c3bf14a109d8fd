/**
 * State charts: what they show is derived here from the machines themselves, independently of the
 * chart model; Mermaid output is checked against the statement forms it may use, SVG for XML
 * well-formedness and the highlight of exactly the active states.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { AnyStateMachine } from "xstate";
import { jobMachine } from "../../machines/job.machine.js";
import { nodeMachine } from "../../machines/node.machine.js";
import { stepMachine } from "../../machines/step.machine.js";
import { taskMachine } from "../../machines/task.machine.js";
import {
  CHART_MACHINES,
  CHART_MACHINE_NAMES,
  activeStateIds,
  chartModel,
  chartTargetOfJob,
  machineStateOfSlurm,
  renderDot,
  renderJson,
  renderMermaid,
  renderSvg,
  renderText,
} from "../../src/charts/index.js";
import { chartCommand, parseChartArgs } from "../../src/cli/commands/chart.js";
import { main } from "../../src/cli/main.js";
import { JOB_STATES } from "../../src/protocol/index.js";
import type { JobView } from "../../src/protocol/index.js";

const machines = Object.entries(CHART_MACHINES) as [string, AnyStateMachine][];

/** State names and event types straight from a machine's definition (not from the chart model). */
function definitionOf(machine: AnyStateMachine) {
  const states = Object.keys(machine.root.states);
  const events = new Set<string>(Object.keys(machine.root.on));
  for (const s of Object.values(machine.root.states)) for (const e of Object.keys(s.on)) events.add(e);
  const finals = Object.entries(machine.root.states).filter(([, s]) => s.type === "final").map(([k]) => k);
  return { states, events: [...events], finals };
}

/**
 * A checker for the subset of Mermaid `stateDiagram-v2` the renderer emits: every line is one of
 * the allowed statements, every state used is declared, every class used is defined, braces balance.
 */
function checkMermaid(text: string): string[] {
  const problems: string[] = [];
  const ID = "[A-Za-z][A-Za-z0-9_]*";
  const LABEL = "[A-Za-z0-9_ ()\\[\\],=.+\\-/']+";
  const forms: [string, RegExp][] = [
    ["comment", /^%%.*$/],
    ["declare", new RegExp(`^(${ID})$`)],
    ["alias", new RegExp(`^state "(${LABEL})" as (${ID})$`)],
    ["open", new RegExp(`^state (${ID}) \\{$`)],
    ["close", /^\}$/],
    ["initial", new RegExp(`^\\[\\*\\] --> (${ID})$`)],
    ["final", new RegExp(`^(${ID}) --> \\[\\*\\]$`)],
    ["edge", new RegExp(`^(${ID}) --> (${ID})(?: : (${LABEL}))?$`)],
    ["note", new RegExp(`^note (?:left|right) of (${ID}) : (${LABEL})$`)],
    ["classDef", new RegExp(`^classDef (${ID}) [a-z-]+:[#A-Za-z0-9.]+(?:,[a-z-]+:[#A-Za-z0-9.]+)*$`)],
    ["class", new RegExp(`^class (${ID}(?:,${ID})*) (${ID})$`)],
  ];
  const lines = text.split("\n");
  if (lines[0] !== "stateDiagram-v2") problems.push(`first line is not stateDiagram-v2: ${lines[0]}`);
  if (text.endsWith("\n")) lines.pop();
  const declared = new Set<string>();
  const used: string[] = [];
  const classes = new Set<string>();
  const usedClasses: string[] = [];
  let depth = 0;
  for (const raw of lines.slice(1)) {
    const line = raw.trim();
    const hit = forms.find(([, re]) => re.test(line));
    if (!hit) {
      problems.push(`not an allowed statement: ${raw}`);
      continue;
    }
    const m = hit[1].exec(line)!;
    switch (hit[0]) {
      case "declare":
        declared.add(m[1]!);
        break;
      case "alias":
        declared.add(m[2]!);
        break;
      case "open":
        declared.add(m[1]!);
        depth++;
        break;
      case "close":
        if (--depth < 0) problems.push("unbalanced }");
        break;
      case "initial":
      case "final":
      case "note":
        used.push(m[1]!);
        break;
      case "edge":
        used.push(m[1]!, m[2]!);
        break;
      case "classDef":
        classes.add(m[1]!);
        break;
      case "class":
        used.push(...m[1]!.split(","));
        usedClasses.push(m[2]!);
        break;
    }
  }
  if (depth !== 0) problems.push("unbalanced {");
  for (const id of used) if (!declared.has(id)) problems.push(`undeclared state ${id}`);
  for (const c of usedClasses) if (!classes.has(c)) problems.push(`undefined class ${c}`);
  return problems;
}

/** A small XML well-formedness check: one root, balanced tags, quoted unique attributes, valid entities. */
function parseXml(text: string): { root: string; rootAttrs: Record<string, string>; problems: string[] } {
  const problems: string[] = [];
  const stack: string[] = [];
  let root = "";
  let rootAttrs: Record<string, string> = {};
  let roots = 0;
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[A-Za-z_:][\w:.-]*="[^"<]*")*)\s*(\/?)>/y;
  const entity = /&(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/y;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === "<") {
      if (text.startsWith("<!--", i)) {
        const end = text.indexOf("-->", i);
        if (end < 0) return { root, rootAttrs, problems: [...problems, "unclosed comment"] };
        i = end + 3;
        continue;
      }
      tag.lastIndex = i;
      const m = tag.exec(text);
      if (!m) return { root, rootAttrs, problems: [...problems, `bad markup at ${i}: ${text.slice(i, i + 40)}`] };
      const [, close, name, attrText, selfClose] = m;
      if (close) {
        if (attrText || selfClose) problems.push(`bad closing tag </${name}>`);
        const open = stack.pop();
        if (open !== name) problems.push(`</${name}> closes <${open}>`);
      } else {
        const attrs: Record<string, string> = {};
        for (const a of attrText!.matchAll(/([A-Za-z_:][\w:.-]*)="([^"]*)"/g)) {
          if (a[1]! in attrs) problems.push(`duplicate attribute ${a[1]} on <${name}>`);
          attrs[a[1]!] = a[2]!;
          for (const amp of a[2]!.matchAll(/&/g)) {
            entity.lastIndex = amp.index;
            if (!entity.test(a[2]!)) problems.push(`bad entity in attribute ${a[1]}`);
          }
        }
        if (stack.length === 0) {
          roots++;
          root = name!;
          rootAttrs = attrs;
        }
        if (!selfClose) stack.push(name!);
      }
      i += m[0].length;
      continue;
    }
    if (c === "&") {
      entity.lastIndex = i;
      if (!entity.test(text)) problems.push(`bad entity at ${i}`);
    } else if (stack.length === 0 && !/\s/.test(c)) problems.push(`text outside the root at ${i}`);
    i++;
  }
  if (stack.length) problems.push(`unclosed: ${stack.join(", ")}`);
  if (roots !== 1) problems.push(`${roots} root elements`);
  return { root, rootAttrs, problems };
}

/** The state ids drawn with the `active` class. */
function highlighted(svg: string): string[] {
  return [...svg.matchAll(/<g class="state[^"]*\bactive\b[^"]*" data-state="([^"]+)">/g)].map((m) => m[1]!).sort();
}

describe("chart model", () => {
  it.each(machines)("%s: reads every state, the initial state and the final states", (_name, machine) => {
    const def = definitionOf(machine);
    const model = chartModel(machine);
    expect(model.id).toBe(machine.id);
    expect(model.states.map((s) => s.id)).toEqual(def.states);
    expect(model.initial).toBe(machine.root.initial.target[0]!.key);
    expect(model.states.filter((s) => s.type === "final").map((s) => s.id)).toEqual(def.finals);
  });

  it("reads guards with their parameters, always transitions and root-level transitions", () => {
    const step = chartModel(stepMachine);
    expect(step.transitions).toContainEqual({ source: "pending", kind: "always", event: "", guard: { name: "launched" }, target: "running", actions: [] });
    expect(step.transitions).toContainEqual({ source: null, kind: "always", event: "", guard: { name: "ended", params: { state: "NODE_FAIL" } }, target: "nodeFail", actions: [] });
    expect(step.transitions).toContainEqual({ source: null, kind: "event", event: "TICK", actions: ["apply"] });
    const task = chartModel(taskMachine);
    expect(task.transitions).toContainEqual({ source: "stopping", kind: "event", event: "STARTED", guard: { name: "fromCurrentEpoch" }, actions: ["recordStart"] });
  });

  it("turns a snapshot value into state ids", () => {
    expect(activeStateIds("running")).toEqual(["running"]);
    expect(activeStateIds({ a: "b", c: { d: "e" } })).toEqual(["a", "a.b", "c", "c.d", "c.d.e"]);
  });
});

describe("Mermaid", () => {
  it("lists every state and every event of the task machine", () => {
    const { states, events, finals } = definitionOf(taskMachine);
    const text = renderMermaid(chartModel(taskMachine));
    const lines = text.split("\n").map((l) => l.trim());
    for (const s of states) expect(lines, s).toContain(s);
    const labels = lines.filter((l) => l.includes(" --> ") && l.includes(" : ")).map((l) => l.split(" : ")[1]!.split(" ")[0]);
    expect(new Set(labels)).toEqual(new Set(events));
    expect(lines).toContain("[*] --> pending");
    for (const f of finals) expect(lines).toContain(`${f} --> [*]`);
    expect(lines).toContain("launching --> running : STARTED [fromCurrentEpoch]");
    expect(lines).toContain("running --> launchFailed : ENDED [endedWith(launch_failed)]");
  });

  it.each(machines)("%s: is valid stateDiagram-v2 (the subset the renderer emits)", (_name, machine) => {
    const model = chartModel(machine);
    expect(checkMermaid(renderMermaid(model))).toEqual([]);
    expect(checkMermaid(renderMermaid(model, { active: [model.initial] }))).toEqual([]);
  });

  it("the checker catches what the renderer must never emit", () => {
    expect(checkMermaid("stateDiagram-v2\n  a\n  a --> b : X\n")).toEqual(["undeclared state b"]);
    expect(checkMermaid("stateDiagram-v2\n  a\n  a --> a : X: y\n")).toHaveLength(1);
    expect(checkMermaid("stateDiagram-v2\n  state a {\n  a\n")).toEqual(["unbalanced {"]);
    expect(checkMermaid("stateDiagram-v2\n  a\n  class a lit\n")).toEqual(["undefined class lit"]);
  });

  it("draws root-level always transitions from every live state, labelled with their guard, and notes root-level events", () => {
    const text = renderMermaid(chartModel(stepMachine));
    for (const s of ["pending", "running", "completing"]) expect(text).toContain(`  ${s} --> nodeFail : [ended(NODE_FAIL)]\n`);
    expect(text).not.toContain("completed --> nodeFail");
    expect(text).toContain("  pending --> running : [launched]\n");
    expect(text).toContain("  note right of pending : handled in every state - LAUNCH, TASKS, CANCEL, SIGNAL, NODE_LOST, TICK (apply)\n");
  });

  it("styles exactly the active states", () => {
    const text = renderMermaid(chartModel(jobMachine), { active: ["running"] });
    expect(text).toContain("  classDef active fill:#ffd54f,stroke:#e65100,stroke-width:3px,color:#000\n");
    expect(text.match(/^ {2}class .*$/gm)).toEqual(["  class running active"]);
    expect(renderMermaid(chartModel(jobMachine))).not.toMatch(/^ {2}class /m);
  });
});

describe("SVG", () => {
  it.each(machines)("%s: is well-formed, self-contained and shows every state", (_name, machine) => {
    const model = chartModel(machine);
    const svg = renderSvg(model);
    const xml = parseXml(svg);
    expect(xml.problems).toEqual([]);
    expect(xml.root).toBe("svg");
    expect(xml.rootAttrs.xmlns).toBe("http://www.w3.org/2000/svg");
    const box = xml.rootAttrs.viewBox!.split(" ").map(Number);
    expect(box).toHaveLength(4);
    expect(box.every((n) => Number.isFinite(n)) && box[2]! > 0 && box[3]! > 0).toBe(true);
    expect(svg).not.toMatch(/NaN|Infinity|undefined/);
    expect(svg).not.toMatch(/(?:href|src)="(?!#|url\(#)/);
    for (const s of definitionOf(machine).states) expect(svg).toContain(`>${s}</text>`);
    expect(highlighted(svg)).toEqual([]);
    expect(svg.match(/<g class="state final"/g)?.length ?? 0).toBe(definitionOf(machine).finals.length);
  });

  it("highlights exactly the active states", () => {
    const model = chartModel(taskMachine);
    expect(highlighted(renderSvg(model, { active: ["running"] }))).toEqual(["running"]);
    expect(highlighted(renderSvg(model, { active: ["stopping", "exited"] }))).toEqual(["exited", "stopping"]);
    expect(highlighted(renderSvg(model, { active: ["no-such-state"] }))).toEqual([]);
  });

  it("the XML checker catches broken documents", () => {
    expect(parseXml('<svg xmlns="x"><g></svg>').problems).not.toEqual([]);
    expect(parseXml('<svg a="1" a="2"/>').problems).toEqual(["duplicate attribute a on <svg>"]);
    expect(parseXml("<svg>&nope;</svg>").problems).toEqual(["bad entity at 5"]);
    expect(parseXml("<svg/><svg/>").problems).toEqual(["2 root elements"]);
  });
});

describe("DOT, JSON and text", () => {
  it.each(machines)("%s: DOT is a digraph with every state", (_name, machine) => {
    const dot = renderDot(chartModel(machine), { active: [chartModel(machine).initial] });
    expect(dot.startsWith(`digraph "${machine.id}" {\n`)).toBe(true);
    expect(dot.endsWith("}\n")).toBe(true);
    expect(dot.split("{").length).toBe(dot.split("}").length);
    for (const s of definitionOf(machine).states) expect(dot).toContain(`"${s}" [label="${s}"`);
    expect(dot.match(/fillcolor/g)).toHaveLength(1);
  });

  it.each(machines)("%s: JSON round-trips", (_name, machine) => {
    const model = chartModel(machine);
    expect(JSON.parse(renderJson(model))).toEqual(model);
  });

  it("text marks the active state with *", () => {
    const text = renderText(chartModel(stepMachine), { active: ["running"] });
    expect(text).toContain("\n  * running     (active)\n");
    expect(text).toContain("\n    pending     (initial)\n");
    expect(text).toContain("\n  pending --[launched]--> running\n");
    expect(text).toContain("\n  (every live state) --[ended(TIMEOUT)]--> timeout\n");
    expect(text).toContain("handled in every state: LAUNCH, TASKS, CANCEL, SIGNAL, NODE_LOST, TICK (apply)");
  });
});

// Cast: the view grows fields the chart does not read.
const job = {
  jobId: "12",
  name: "demo",
  user: "alice",
  kind: "run",
  state: "RUNNING",
  reason: "None",
  exitCode: "0:0",
  derivedExitCode: "0:0",
  failedNodes: [],
  ntasks: 2,
  nodes: ["node-1"],
  submittedAt: 1,
  steps: [
    {
      stepId: "0",
      state: "COMPLETING",
      reason: "None",
      exitCode: "0:0",
      ntasks: 2,
      failedNodes: [],
      groups: {},
      nodes: {},
      killedByRuntime: "",
      tasks: [
        { rank: 0, node: "node-1", state: "exited", killedByRuntime: false },
        { rank: 1, node: "node-1", state: "stopping", killedByRuntime: true },
      ],
      tasksOmitted: false,
    },
  ],
} as JobView;

describe("job views", () => {
  it("maps every Slurm state to a state of the job and step machines", () => {
    const stepStates = Object.keys(stepMachine.root.states);
    const jobStates = Object.keys(jobMachine.root.states);
    for (const s of JOB_STATES) {
      expect(stepStates, s).toContain(machineStateOfSlurm(s));
      expect(jobStates, s).toContain(machineStateOfSlurm(s));
    }
    expect(machineStateOfSlurm("NODE_FAIL")).toBe("nodeFail");
  });

  it("picks the job, a step or a task and its current state", () => {
    expect(chartTargetOfJob(job)).toEqual({ machine: "job", active: ["running"], caption: "job 12" });
    expect(chartTargetOfJob(job, { step: "0" })).toEqual({ machine: "step", active: ["completing"], caption: "step 12.0" });
    expect(chartTargetOfJob(job, { step: "0", rank: 1 })).toEqual({ machine: "task", active: ["stopping"], caption: "task 12.0 rank 1" });
    expect(() => chartTargetOfJob(job, { step: "3" })).toThrow("job 12 has no step 3 (steps: 0)");
    expect(() => chartTargetOfJob(job, { step: "0", rank: 5 })).toThrow("step 12.0 has no task of rank 5 (ranks 0-1)");
  });

  it("nodes are charted as well", () => {
    expect(CHART_MACHINE_NAMES).toEqual(["job", "step", "task", "node"]);
    expect(CHART_MACHINES.node).toBe(nodeMachine);
  });
});

describe("muster chart", () => {
  afterEach(() => vi.restoreAllMocks());
  const capture = () => {
    const out: string[] = [];
    const err: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((s) => (out.push(String(s)), true));
    vi.spyOn(process.stderr, "write").mockImplementation((s) => (err.push(String(s)), true));
    return { out, err };
  };

  it("prints a machine's chart, Mermaid by default", async () => {
    const { out } = capture();
    expect(await main(["chart", "task"], {})).toBe(0);
    expect(out.join("")).toBe(renderMermaid(chartModel(taskMachine)));
    out.length = 0;
    expect(await main(["chart", "node", "--format", "svg"], {})).toBe(0);
    expect(out.join("")).toBe(renderSvg(chartModel(nodeMachine)));
  });

  it.each([
    [["chart", "bogus"], 'muster: error: chart: unknown machine "bogus" (expected job, step, task, node)\n'],
    [["chart", "task", "--format", "png"], 'muster: error: chart: unknown format "png" (expected mermaid, svg, dot, json, text)\n'],
    [["chart"], "muster: error: chart: expected one machine (job, step, task, node) or --job ID\n"],
    [["chart", "--step", "0"], "muster: error: chart: --step needs --job\n"],
    [["chart", "--job", "12", "--rank", "1"], "muster: error: chart: --rank needs --step\n"],
    [["chart", "task", "--job", "12"], 'muster: error: chart: give a machine or --job, not both ("task")\n'],
  ])("%j is a usage error with one line and exit status 2", async (argv, message) => {
    const { out, err } = capture();
    expect(await main(argv, {})).toBe(2);
    expect(err.join("")).toBe(message);
    expect(out).toEqual([]);
  });

  it("lights a task's state from the job's view", async () => {
    const out: string[] = [];
    const asked: string[] = [];
    const fetchJob = async (id: string) => (asked.push(id), job);
    const request = parseChartArgs({ options: { job: "12", step: "0", rank: 1 }, positionals: [] });
    expect(await chartCommand(request, fetchJob, (s) => out.push(s))).toBe(0);
    expect(asked).toEqual(["12"]);
    expect(out.join("")).toBe(`task 12.0 rank 1: stopping\n${renderText(chartModel(taskMachine), { active: ["stopping"] })}`);
    out.length = 0;
    await chartCommand(parseChartArgs({ options: { job: "12", format: "svg" }, positionals: [] }), fetchJob, (s) => out.push(s));
    expect(highlighted(out.join(""))).toEqual(["running"]);
    await expect(chartCommand(parseChartArgs({ options: { job: "12", step: "7" }, positionals: [] }), fetchJob, () => {})).rejects.toMatchObject({
      code: "UNKNOWN_STEP",
      message: "chart: job 12 has no step 7 (steps: 0)",
    });
  });
});

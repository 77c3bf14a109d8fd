import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CHART_DIR, checkCharts, renderCharts, writeCharts } from "../../scripts/gen-charts.js";
import { CHART_MACHINE_NAMES } from "../../src/charts/index.js";

describe("generated state charts", () => {
  const temps: string[] = [];
  afterEach(() => {
    for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const tempRoot = (): string => {
    const dir = mkdtempSync(join(tmpdir(), "muster-charts-"));
    temps.push(dir);
    return dir;
  };

  it("docs/machines matches the machines (run `npm run gen:charts` when this fails)", () => {
    expect(checkCharts()).toEqual({ stale: [], missing: [], extra: [] });
  });

  it("renders a Mermaid, SVG and DOT file per machine and an index embedding the Mermaid blocks", () => {
    const rendered = renderCharts();
    const expected = [...CHART_MACHINE_NAMES.flatMap((m) => ["dot", "mmd", "svg"].map((ext) => `${CHART_DIR}/${m}.${ext}`)), `${CHART_DIR}/README.md`].sort();
    expect([...rendered.keys()]).toEqual(expected);
    const readme = rendered.get(`${CHART_DIR}/README.md`)!;
    for (const m of CHART_MACHINE_NAMES) {
      expect(readme).toContain(`## ${m}\n`);
      expect(readme).toContain(`\`\`\`mermaid\n${rendered.get(`${CHART_DIR}/${m}.mmd`)}\`\`\`\n`);
    }
    for (const [path, content] of rendered) expect(content.endsWith("\n"), path).toBe(true);
    expect(renderCharts()).toEqual(rendered);
  });

  it("detects stale, missing and extra files", () => {
    const root = tempRoot();
    expect(checkCharts(root).missing).toHaveLength(renderCharts().size);
    writeCharts(root);
    expect(checkCharts(root)).toEqual({ stale: [], missing: [], extra: [] });

    const task = `${CHART_DIR}/task.mmd`;
    writeFileSync(join(root, task), readFileSync(join(root, task), "utf8").replace("LAUNCH", "START"));
    rmSync(join(root, CHART_DIR, "node.svg"));
    mkdirSync(join(root, CHART_DIR), { recursive: true });
    writeFileSync(join(root, CHART_DIR, "gone.mmd"), "stateDiagram-v2\n");
    writeFileSync(join(root, CHART_DIR, "notes.txt"), "kept: not a generated kind of file\n");
    expect(checkCharts(root)).toEqual({ stale: [task], missing: [`${CHART_DIR}/node.svg`], extra: [`${CHART_DIR}/gone.mmd`] });

    writeCharts(root);
    expect(checkCharts(root)).toEqual({ stale: [], missing: [], extra: [] });
  });
});

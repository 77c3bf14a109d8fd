import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";

/**
 * The Chinese pages under docs/zh/ mirror sections of English pages. Each Chinese heading that
 * translates an English one carries the English heading's text in a marker on its line:
 *
 *     ## 退出状态 <!-- en: Exit status -->
 *
 * The English pages are read at test time, so a section added to an English page fails this test
 * until its Chinese page gains a heading with the matching marker; a marker whose English heading
 * is gone (renamed or removed) fails it too. Headings are compared by their GitHub anchor, so
 * backticks and punctuation do not matter.
 */

const ROOT = join(import.meta.dirname, "..", "..");

interface Heading {
  readonly level: number;
  readonly text: string;
}

/** Which English headings a Chinese page must carry. */
interface Mirror {
  readonly en: string;
  readonly zh: string;
  /** Whole page: its `##` and `###` headings. Sections: each named heading with every heading under it. */
  readonly sections?: readonly string[];
}

const MIRRORS: readonly Mirror[] = [
  { en: "README.md", zh: "docs/zh/README.md" },
  { en: "docs/exit-codes.md", zh: "docs/zh/exit-codes.md" },
  { en: "docs/cli.md", zh: "docs/zh/cli.md", sections: ["run", "batch", "history", "show", "kill"] },
  // The first-failure design page gathers what these sections say about the notification.
  {
    en: "docs/exit-codes.md",
    zh: "docs/zh/first-failure.md",
    sections: ["9. The first-failure notification and the Task Exit Code Summary"],
  },
  { en: "docs/protocol.md", zh: "docs/zh/first-failure.md", sections: ["State for watchers (`<P>_JOBS`)", "Message ids", "Streams"] },
  { en: "docs/architecture.md", zh: "docs/zh/first-failure.md", sections: ["How large a notification gets"] },
];

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to `-`. */
function anchor(text: string): string {
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

/** Lines outside fenced code blocks (a `#!/bin/sh` in a block is not a heading). */
function proseLines(markdown: string): string[] {
  const out: string[] = [];
  let fence: string | undefined;
  for (const line of markdown.split("\n")) {
    const m = /^\s*(`{3,}|~{3,})/.exec(line);
    if (m) {
      if (fence === undefined) fence = m[1]![0]!.repeat(m[1]!.length);
      else if (m[1]!.startsWith(fence)) fence = undefined;
      continue;
    }
    if (fence === undefined) out.push(line);
  }
  return out;
}

/** The headings of a page, in order, without markers. */
function headings(markdown: string): Heading[] {
  const out: Heading[] = [];
  for (const line of proseLines(markdown)) {
    const m = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (m) out.push({ level: m[1]!.length, text: m[2]!.replace(/<!--.*?-->/g, "").trim() });
  }
  return out;
}

/** The English headings a Chinese page carries, from the `<!-- en: … -->` markers on its heading lines. */
function markers(markdown: string): string[] {
  const out: string[] = [];
  for (const line of proseLines(markdown)) {
    if (!/^#{1,6}\s/.test(line)) continue;
    for (const m of line.matchAll(/<!--\s*en:\s*(.*?)\s*-->/g)) out.push(m[1]!);
  }
  return out;
}

/** The English headings a mirror requires: `##`/`###` of the page, or each named section and its subtree. */
function requiredHeadings(en: string, sections?: readonly string[]): { required: string[]; missingSections: string[] } {
  const all = headings(en);
  if (!sections) return { required: all.filter((h) => h.level === 2 || h.level === 3).map((h) => h.text), missingSections: [] };
  const required: string[] = [];
  const missingSections: string[] = [];
  for (const name of sections) {
    const start = all.findIndex((h) => anchor(h.text) === anchor(name));
    if (start < 0) {
      missingSections.push(name);
      continue;
    }
    const top = all[start]!;
    required.push(top.text);
    for (const h of all.slice(start + 1)) {
      if (h.level <= top.level) break;
      required.push(h.text);
    }
  }
  return { required, missingSections };
}

/** English headings the Chinese page lacks, and markers that name no required English heading. */
function compareMirror(en: string, zh: string, sections?: readonly string[]): { missing: string[]; stale: string[]; missingSections: string[] } {
  const { required, missingSections } = requiredHeadings(en, sections);
  const have = new Set(markers(zh).map(anchor));
  const want = new Set(required.map(anchor));
  return {
    missing: required.filter((h) => !have.has(anchor(h))),
    stale: markers(zh).filter((m) => !want.has(anchor(m))),
    missingSections,
  };
}

const read = (path: string): string => readFileSync(join(ROOT, path), "utf8");

describe("docs/zh mirrors the English pages", () => {
  for (const zh of [...new Set(MIRRORS.map((m) => m.zh))]) {
    it(`${zh} has a section for every English section it mirrors`, () => {
      const page = read(zh);
      const mirrors = MIRRORS.filter((m) => m.zh === zh);
      const missing: string[] = [];
      const missingSections: string[] = [];
      const required = new Set<string>();
      for (const m of mirrors) {
        const r = compareMirror(read(m.en), page, m.sections);
        missing.push(...r.missing.map((h) => `${m.en}: ${h}`));
        missingSections.push(...r.missingSections.map((h) => `${m.en}: ${h}`));
        for (const h of requiredHeadings(read(m.en), m.sections).required) required.add(anchor(h));
      }
      const stale = markers(page).filter((m) => !required.has(anchor(m)));
      // Add a heading ending `<!-- en: <English heading> -->` to the Chinese page for each missing one.
      expect({ missing, stale, missingSections }).toEqual({ missing: [], stale: [], missingSections: [] });
    });
  }

  it("every relative link of a Chinese page names a file, and a heading, that exist", () => {
    const pages = [...new Set(MIRRORS.map((m) => m.zh))];
    const broken: string[] = [];
    for (const from of pages) {
      for (const line of proseLines(read(from))) {
        for (const m of line.matchAll(/\]\(([^)\s]*?)(?:#([^)\s]*))?\)/g)) {
          const [, file, frag] = m;
          if (/^[a-z]+:/.test(file!)) continue; // http:, https:
          const target = file === "" ? from : join(dirname(from), file!);
          if (!target.endsWith(".md")) {
            if (!existsSync(join(ROOT, target))) broken.push(`${from}: ${m[0]}`);
            continue;
          }
          let text: string;
          try {
            text = read(target);
          } catch {
            broken.push(`${from}: ${m[0]}`);
            continue;
          }
          if (frag !== undefined && !headings(text).some((h) => anchor(h.text) === decodeURIComponent(frag))) broken.push(`${from}: ${m[0]}`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it("the English README links docs/zh/ and the Chinese README links back", () => {
    expect(read("README.md")).toMatch(/\]\(docs\/zh\/(README\.md)?\)/);
    expect(read("docs/zh/README.md")).toMatch(/\]\(\.\.\/\.\.\/README\.md\)/);
  });
});

describe("the mirror check", () => {
  const en = ["# Page", "## Exit status", "text", "```sh", "## not a heading", "```", "### `--json` fields", "## Examples"].join("\n");

  it("names an English section the Chinese page lacks, and a marker whose English section is gone", () => {
    const zh = ["# 页面", "## 退出状态 <!-- en: Exit status -->", "### `--json` 字段 <!-- en: `--json` fields -->", "## 旧节 <!-- en: Old section -->", "正文里的 <!-- en: Examples --> 不算标记。"].join("\n");
    expect(compareMirror(en, zh)).toEqual({ missing: ["Examples"], stale: ["Old section"], missingSections: [] });
  });

  it("accepts a page whose markers cover every section, ignoring headings inside code blocks", () => {
    const zh = ["## 退出状态 <!-- en: Exit status -->", "### 字段 <!-- en: --json fields -->", "## 示例 <!-- en: Examples -->"].join("\n");
    expect(compareMirror(en, zh)).toEqual({ missing: [], stale: [], missingSections: [] });
  });

  it("takes a named section with every heading under it, and names a section that no longer exists", () => {
    const page = ["## run", "### Output files", "#### Patterns", "## batch", "## queue"].join("\n");
    expect(requiredHeadings(page, ["run", "batch", "gone"])).toEqual({ required: ["run", "Output files", "Patterns", "batch"], missingSections: ["gone"] });
  });
});

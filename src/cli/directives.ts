/**
 * `#SBATCH` and `#MUSTER` directives of a batch script, read as sbatch reads them: lines that start
 * with the tag, among the comments and blank lines at the top of the script; the first other line
 * ends them (a directive after it is an ordinary comment). A directive line holds options as on the
 * command line, single or double quotes grouping words, and `#` outside quotes starting a comment.
 */
import { MusterError } from "../errors.js";

/** One directive line. */
export interface Directive {
  readonly tag: "SBATCH" | "MUSTER";
  /** 1-based line number in the script. */
  readonly line: number;
  readonly args: readonly string[];
}

/** The directives at the top of `content`, in file order; throws USAGE for an unterminated quote. */
export function readDirectives(content: string, script = "the script"): Directive[] {
  const out: Directive[] = [];
  const lines = content.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!.replace(/\r$/, "");
    const m = /^#(SBATCH|MUSTER)(?=\s|$)(.*)$/.exec(text);
    if (m) {
      out.push({ tag: m[1] as Directive["tag"], line: i + 1, args: splitWords(m[2]!, `${script} line ${i + 1}`) });
      continue;
    }
    // Blank lines and comments (the #! line, indented ones too) do not end the directives.
    if (/^\s*(#.*)?$/.test(text)) continue;
    break;
  }
  return out;
}

/** Splits a directive's text into words: whitespace separates, quotes group, `#` outside a word's quotes ends the line. */
function splitWords(text: string, where: string): string[] {
  const words: string[] = [];
  let cur: string | undefined;
  let quote: string | undefined;
  for (const ch of text) {
    if (quote) {
      if (ch === quote) quote = undefined;
      else cur += ch;
      continue;
    }
    if (ch === '"' || ch === "'") {
      quote = ch;
      cur ??= "";
      continue;
    }
    if (/\s/.test(ch)) {
      if (cur !== undefined) words.push(cur);
      cur = undefined;
      continue;
    }
    if (ch === "#" && cur === undefined) break;
    cur = (cur ?? "") + ch;
  }
  if (quote) throw new MusterError("USAGE", `batch: ${where}: unterminated ${quote} quote in a directive`);
  if (cur !== undefined) words.push(cur);
  return words;
}

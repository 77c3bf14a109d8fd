/**
 * Writes one JSON Schema per message type into docs/protocol/<type>.schema.json from the zod
 * schemas; `--check` writes nothing and exits 1 when a file is stale, missing or extra.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { z } from "zod";
import { MESSAGE_SCHEMAS } from "../src/protocol/messages.js";
import type { MessageType } from "../src/protocol/messages.js";

/** The project root (this file lives in scripts/). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Where the generated schemas go, relative to the project root. */
export const SCHEMA_DIR = "docs/protocol";

const SUFFIX = ".schema.json";

/** Renders every message's JSON Schema: repo-relative path → file content, sorted by path. */
export function renderSchemas(): Map<string, string> {
  const types = (Object.keys(MESSAGE_SCHEMAS) as MessageType[]).sort();
  const out = new Map<string, string>();
  for (const type of types) {
    const json = z.toJSONSchema(MESSAGE_SCHEMAS[type], { target: "draft-2020-12", io: "input" });
    out.set(`${SCHEMA_DIR}/${type}${SUFFIX}`, `${JSON.stringify(json, null, 2)}\n`);
  }
  return out;
}

/** Differences between the rendered schemas and the files under `root`. */
export interface SchemaDrift {
  readonly stale: string[];
  readonly missing: string[];
  readonly extra: string[];
}

/** Compares the rendered schemas with the files on disk. */
export function checkSchemas(root: string = ROOT): SchemaDrift {
  const rendered = renderSchemas();
  const dir = join(root, SCHEMA_DIR);
  let onDisk: string[] = [];
  try {
    onDisk = readdirSync(dir).filter((f) => f.endsWith(SUFFIX)).map((f) => `${SCHEMA_DIR}/${f}`);
  } catch {
    onDisk = [];
  }
  const stale: string[] = [];
  const missing: string[] = [];
  for (const [path, content] of rendered) {
    if (!onDisk.includes(path)) missing.push(path);
    else if (readFileSync(join(root, path), "utf8") !== content) stale.push(path);
  }
  const extra = onDisk.filter((p) => !rendered.has(p)).sort();
  return { stale, missing, extra };
}

/** Writes the rendered schemas and removes generated files that no longer correspond to a message. */
export function writeSchemas(root: string = ROOT): SchemaDrift {
  const drift = checkSchemas(root);
  mkdirSync(join(root, SCHEMA_DIR), { recursive: true });
  for (const [path, content] of renderSchemas()) writeFileSync(join(root, path), content);
  for (const path of drift.extra) rmSync(join(root, path));
  return drift;
}

function main(argv: readonly string[]): number {
  if (argv.includes("--check")) {
    const { stale, missing, extra } = checkSchemas();
    const lines = [
      ...stale.map((p) => `stale: ${p}`),
      ...missing.map((p) => `missing: ${p}`),
      ...extra.map((p) => `extra: ${p}`),
    ];
    if (lines.length === 0) return 0;
    process.stderr.write(`${lines.join("\n")}\nrun: npm run gen:schemas\n`);
    return 1;
  }
  const { stale, missing, extra } = writeSchemas();
  const changed = stale.length + missing.length + extra.length;
  process.stdout.write(`gen:schemas: ${renderSchemas().size} schemas in ${SCHEMA_DIR}, ${changed} changed\n`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}

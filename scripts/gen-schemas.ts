/**
 * Writes one JSON Schema per message type into docs/protocol/<type>.schema.json from the zod
 * schemas; `--check` writes nothing and exits 1 when a file is stale, missing or extra.
 */
import { dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { z } from "zod";
import { MESSAGE_SCHEMAS } from "../src/protocol/messages.js";
import type { MessageType } from "../src/protocol/messages.js";
import { checkGenerated, runGenerator, writeGenerated } from "./generated-files.js";
import type { Drift } from "./generated-files.js";

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
export type SchemaDrift = Drift;

const isSchema = (file: string): boolean => file.endsWith(SUFFIX);

/** Compares the rendered schemas with the files on disk. */
export function checkSchemas(root: string = ROOT): SchemaDrift {
  return checkGenerated(root, SCHEMA_DIR, isSchema, renderSchemas());
}

/** Writes the rendered schemas and removes generated files that no longer correspond to a message. */
export function writeSchemas(root: string = ROOT): SchemaDrift {
  return writeGenerated(root, SCHEMA_DIR, isSchema, renderSchemas());
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = runGenerator(process.argv.slice(2), {
    check: () => checkSchemas(),
    write: () => writeSchemas(),
    hint: "npm run gen:schemas",
    label: (changed) => `gen:schemas: ${renderSchemas().size} schemas in ${SCHEMA_DIR}, ${changed} changed`,
  });
}

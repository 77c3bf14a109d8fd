import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SCHEMA_DIR, checkSchemas, renderSchemas, writeSchemas } from "../../scripts/gen-schemas.js";
import { MESSAGE_SCHEMAS } from "../../src/protocol/index.js";

describe("generated JSON Schemas", () => {
  const temps: string[] = [];
  afterEach(() => {
    for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const tempRoot = (): string => {
    const dir = mkdtempSync(join(tmpdir(), "muster-schemas-"));
    temps.push(dir);
    return dir;
  };

  it("docs/protocol matches the zod schemas (run `npm run gen:schemas` when this fails)", () => {
    expect(checkSchemas()).toEqual({ stale: [], missing: [], extra: [] });
  });

  it("renders one sorted, newline-terminated file per message type", () => {
    const rendered = renderSchemas();
    const paths = [...rendered.keys()];
    expect(paths).toEqual(Object.keys(MESSAGE_SCHEMAS).sort().map((t) => `${SCHEMA_DIR}/${t}.schema.json`));
    for (const [path, content] of rendered) {
      expect(content.endsWith("}\n"), path).toBe(true);
      const json = JSON.parse(content) as { title?: string; $schema?: string };
      expect(json.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
      expect(path).toBe(`${SCHEMA_DIR}/${json.title}.schema.json`);
    }
    expect(renderSchemas()).toEqual(rendered);
  });

  it("detects stale, missing and extra files", () => {
    const root = tempRoot();
    expect(checkSchemas(root).missing).toHaveLength(renderSchemas().size);
    writeSchemas(root);
    expect(checkSchemas(root)).toEqual({ stale: [], missing: [], extra: [] });

    const hello = `${SCHEMA_DIR}/hello.schema.json`;
    writeFileSync(join(root, hello), readFileSync(join(root, hello), "utf8").replace('"slots"', '"cores"'));
    rmSync(join(root, SCHEMA_DIR, "bye.schema.json"));
    mkdirSync(join(root, SCHEMA_DIR), { recursive: true });
    writeFileSync(join(root, SCHEMA_DIR, "gone.schema.json"), "{}\n");
    expect(checkSchemas(root)).toEqual({
      stale: [hello],
      missing: [`${SCHEMA_DIR}/bye.schema.json`],
      extra: [`${SCHEMA_DIR}/gone.schema.json`],
    });

    writeSchemas(root);
    expect(checkSchemas(root)).toEqual({ stale: [], missing: [], extra: [] });
  });
});

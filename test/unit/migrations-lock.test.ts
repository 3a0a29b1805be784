import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { loadMigrations } from "../../sql/index.ts";

// Shipped migrations are never edited: sql/migrate.ts refuses an applied file whose checksum
// changed, but only when a database that applied it starts again. sql/migrations.lock pins each
// shipped file to that same checksum (the sha256 that schema_migrations records; the file is in
// `sha256sum` format), so an edit fails here, in CI, before any database meets it.
// docs/operations.md, "Migrations".
const LOCK = new URL("../../sql/migrations.lock", import.meta.url);
const INSTEAD = 'Shipped migrations are never edited: add a new migration instead (docs/operations.md, "Migrations").';

/** The lock's pins: file name → sha256. */
function pinned(): Map<string, string> {
  const pins = new Map<string, string>();
  for (const line of readFileSync(LOCK, "utf8").split("\n")) {
    if (line === "") continue;
    const m = /^([0-9a-f]{64}) {2}(\d{3}_[a-z0-9_]+\.sql)$/.exec(line);
    if (!m) throw new Error(`sql/migrations.lock: not a "<sha256>  <file>" line: ${JSON.stringify(line)}`);
    pins.set(m[2]!, m[1]!);
  }
  return pins;
}

describe("sql/migrations.lock", () => {
  it("pins every shipped migration, each still there and unchanged", async () => {
    const files = new Map((await loadMigrations()).map((m) => [m.name, m.checksum]));
    const problems: string[] = [];
    for (const [name, sha] of pinned()) {
      const now = files.get(name);
      if (now === undefined) problems.push(`sql/${name} is gone (removed or renamed); databases have applied it.`);
      else if (now !== sha) problems.push(`sql/${name} changed after it shipped (sha256 ${now}, pinned ${sha}).`);
    }
    expect(problems, `${problems.join("\n")}\n${INSTEAD}`).toEqual([]);
  });

  it("a migration not pinned yet is new: numbered after every shipped one, and its pin is to be added", async () => {
    const pins = pinned();
    const last = Math.max(...[...pins.keys()].map((name) => Number(name.slice(0, 3))));
    const fresh = (await loadMigrations()).filter((m) => !pins.has(m.name));
    // A database migrated to `last` would apply one numbered below it after later ones.
    const lastName = String(last).padStart(3, "0");
    const early = fresh.filter((m) => m.version <= last).map((m) => `sql/${m.name} is numbered at or below ${lastName}, the last shipped migration: number it after.`);
    expect(early, early.join("\n")).toEqual([]);
    const lines = fresh.map((m) => `${m.checksum}  ${m.name}`);
    expect(lines, `new migrations are pinned as they are added; append to sql/migrations.lock:\n${lines.join("\n")}`).toEqual([]);
  });
});

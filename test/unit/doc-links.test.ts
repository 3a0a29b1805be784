import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// Every reference to a document resolves: markdown links (relative ones, with their #anchor) in the
// *.md files, and `docs/<name>.md` (with its `, "Section"`) in the docs and the code's comments.
const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const skip = new Set(["node_modules", ".git", ".data", "test-results", "results", "json"]);

function files(dir: string, exts: RegExp, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (skip.has(name)) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files(p, exts, out);
    else if (exts.test(name)) out.push(p);
  }
  return out;
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[`*_]/g, "")
    .replace(/[^\p{L}\p{N} -]/gu, "")
    .replace(/ /g, "-");

const headings = (file: string) => [...readFileSync(file, "utf8").matchAll(/^#{1,6} +(.+)$/gm)].map((m) => m[1]!.trim());

describe("document references", () => {
  it("relative markdown links reach a file, and their anchors a heading", () => {
    const broken: string[] = [];
    for (const f of files(root, /\.md$/)) {
      const text = readFileSync(f, "utf8").replace(/```[\s\S]*?```/g, "");
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/i.test(target)) continue;
        const [path, anchor] = target.split("#") as [string, string | undefined];
        const file = path ? resolve(dirname(f), path) : f;
        const where = `${relative(root, f)} → ${target}`;
        if (!existsSync(file)) broken.push(`${where}: no such file`);
        else if (anchor && file.endsWith(".md") && !headings(file).some((h) => slug(h) === anchor)) broken.push(`${where}: no such heading`);
      }
    }
    expect(broken).toEqual([]);
  });

  it("docs/<name>.md named in docs and code exist, and a named section is one of their headings", () => {
    const broken: string[] = [];
    for (const f of files(root, /\.(md|ts|js)$/)) {
      const text = readFileSync(f, "utf8");
      for (const m of text.matchAll(/\bdocs\/([a-z0-9-]+\.md)(?:,? "([^"]+)")?/g)) {
        const file = join(root, "docs", m[1]!);
        // A section's name may wrap onto a comment's next line.
        const section = m[2]?.replace(/\s*\n\s*(?:\*|\/\/|#)?\s*/g, " ");
        const where = `${relative(root, f)} → docs/${m[1]}${section ? `, "${section}"` : ""}`;
        if (!existsSync(file)) broken.push(`${where}: no such file`);
        else if (section && !headings(file).some((h) => h.toLowerCase().includes(section.toLowerCase()))) broken.push(`${where}: no such heading`);
      }
    }
    expect(broken).toEqual([]);
  });
});

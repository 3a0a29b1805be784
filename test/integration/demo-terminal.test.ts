import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../contracts/index.ts";
import { signToken } from "../../control/index.ts";
import { namedDatabase } from "../helpers/database.ts";
import { NATS_URL, testPrefix } from "../helpers/env.ts";
import { removeNatsState, until } from "../helpers/platform.ts";
import { freePort } from "../helpers/ports.ts";

const root = resolve(import.meta.dirname, "../..");
const SCRIPT = ["/usr/bin/script", "/bin/script"].find(existsSync);


// `npm start -- --demo` as a person runs it: in a pseudo-terminal (util-linux `script`), on a
// database that does not exist yet (the demo creates and migrates it), stopped with Ctrl-C.
describe.skipIf(!SCRIPT)("npm start -- --demo in a terminal", () => {
  it("shows the addresses first, no log lines, and one summary line that updates in place; Ctrl-C stops it cleanly", async () => {
    await using db = await namedDatabase();
    const prefix = testPrefix();
    const dir = mkdtempSync(join(tmpdir(), "vv-demo-"));
    const logFile = join(dir, "demo.log");
    const port = await freePort();
    const child = spawn(SCRIPT!, ["-qfec", `npm start -- --demo --terminals 4 --log ${logFile}`, "/dev/null"], {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        TERM: "xterm",
        NATS_URL,
        DATABASE_URL: db.url,
        VEND_PREFIX: prefix,
        PORT: String(port),
        HOST: "127.0.0.1",
        STREAM_MAX_BYTES: String(64 * 2 ** 20),
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    // "close", not "exit": the exit can come before the last of the output has been read.
    const exited = new Promise<number | null>((r) => child.once("close", r));
    try {
      const summary = "\r\x1b[Kterminals ";
      await until(async () => out.split(summary).length > 3, 90_000, 200);

      const firstScreen = out.slice(0, out.indexOf(summary));
      const url = `http://127.0.0.1:${port}`;
      expect(firstScreen).toContain(`charge page   ${url}/t/T-1-001`);
      expect(firstScreen).toContain(`console       ${url}/console`);
      expect(firstScreen).toContain(`the log goes to ${logFile}`);
      // The addresses are on the first screen: within its first 24 lines, as a terminal shows them.
      const lines = firstScreen.split("\n");
      expect(lines.findIndex((l) => l.includes("charge page"))).toBeLessThan(24);
      // Progress of the start, step by step.
      expect(firstScreen).toMatch(/\[2\/3\] database: migration 1 of \d+: 001_/);
      expect(firstScreen).toContain("[3/3] fleet: 2 regions, 2 franchisees, 2 gateways, 4 terminals");
      // No log line (pino's JSON, Fastify's request lines) anywhere on the terminal...
      expect(out).not.toContain('{"level"');
      expect(out).not.toMatch(/incoming request|request completed/);
      // ...and the summary never starts a line of its own: it is rewritten in place.
      expect(out.slice(out.indexOf(summary))).not.toMatch(/\nterminals /);
      expect(out).toMatch(/terminals \d+\/4 online · sessions \d+ live, \d+ completed, \d+ failed · [\d.]+ kWh · fees [\d.]+ · open faults \d+/);
      // The log went to its file instead.
      expect(readFileSync(logFile, "utf8")).toContain('"msg":"platform started"');
      // The seeded network has a place for each terminal and a capacity for each region (issue 13).
      const admin = await signToken(loadConfig({}, { demo: true }).VEND_JWT_SECRET!, "demo-test", "admin", 600);
      const get = (path: string) => fetch(url + path, { headers: { authorization: `Bearer ${admin}` } }).then((r) => r.json() as Promise<Record<string, unknown>>);
      expect(await get("/v1/admin/regions/SH")).toMatchObject({ capacityKw: 40 });
      expect(await get("/v1/admin/regions/UR")).toMatchObject({ capacityKw: 30 });
      expect(await get("/v1/admin/terminals/T-1-001")).toMatchObject({ location: { latitude: 31.2304, longitude: 121.4737, address: "上海市黄浦区人民大道 1号桩" } });
      expect(await get("/v1/admin/terminals/T-2-002")).toMatchObject({ location: { latitude: 43.8265, address: "乌鲁木齐市天山区解放北路 2号桩" } });

      child.stdin!.write("\x03"); // Ctrl-C, through the terminal's line discipline (SIGINT)
      const code = await Promise.race([exited, new Promise<"late">((r) => setTimeout(() => r("late"), 30_000))]);
      // npm itself answers a Ctrl-C with 130 (128 + SIGINT) once the platform has stopped.
      expect([0, 130]).toContain(code);
      const after = out.slice(out.lastIndexOf("^C"));
      expect(after).toMatch(/^\^C\r?\nstopping: finishing the work in hand\r?\nstopped\r?\n/);
      expect(after).not.toMatch(/error|Error|\s+at /);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      await removeNatsState(prefix);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 150_000);

  it("writes plain lines, no carriage returns or escapes, when stdout is not a terminal", async () => {
    await using db = await namedDatabase();
    const prefix = testPrefix();
    const dir = mkdtempSync(join(tmpdir(), "vv-demo-"));
    const port = await freePort();
    const child = spawn(process.execPath, ["--import", "tsx", "cli/main.ts", "--demo", "--terminals", "2", "--log", join(dir, "demo.log")], {
      cwd: root,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", NATS_URL, DATABASE_URL: db.url, VEND_PREFIX: prefix, PORT: String(port), HOST: "127.0.0.1", STREAM_MAX_BYTES: String(64 * 2 ** 20) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    // "close", not "exit": the exit can come before the last of the output has been read.
    const exited = new Promise<number | null>((r) => child.once("close", r));
    try {
      // A summary line every 5 s: two of them.
      await until(async () => out.split("\nterminals ").length > 2, 90_000, 200);
      expect(out).not.toMatch(/[\r\x1b]/);
      expect(out).toContain(`charge page   http://127.0.0.1:${port}/t/T-1-001`);
      expect(out.indexOf("charge page")).toBeLessThan(out.indexOf("\nterminals "));
      expect(out).not.toContain('{"level"');
      child.kill("SIGINT");
      expect(await exited).toBe(0);
      expect(out).toMatch(/\nstopping: finishing the work in hand\nstopped\n$/);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      await removeNatsState(prefix);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 150_000);
});

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { namedDatabase } from "../helpers/database.ts";
import { NATS_URL, testPrefix } from "../helpers/env.ts";
import { removeNatsState, until } from "../helpers/platform.ts";
import { freePort } from "../helpers/ports.ts";

const root = resolve(import.meta.dirname, "../..");

/** The README's shell block under "An operator's first hour", as an operator pastes it. */
function firstHour(): string {
  const readme = readFileSync(resolve(root, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## An operator's first hour"));
  const m = /```sh\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error("README has no shell block under \"An operator's first hour\"");
  return m[1]!;
}

// Issue 13, "done when": the README's first hour works as written: start, a token, the registry,
// a tariff, a simulated gateway and the first charge, seen in the network's sessions and the
// audit log. Run by bash on a database that does not exist yet, on a port of its own.
describe("README: an operator's first hour", () => {
  it("runs as written, from nothing to a completed first charge in the audit log", async () => {
    await using db = await namedDatabase();
    const prefix = testPrefix();
    const port = await freePort();
    const script = firstHour().replaceAll("127.0.0.1:8080", `127.0.0.1:${port}`);
    // Its own process group: the platform and the simulator it starts in the background are
    // stopped with it, by its id, when the block is done.
    const child = spawn("bash", ["-eo", "pipefail", "-c", script], {
      cwd: root,
      detached: true,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        NATS_URL,
        DATABASE_URL: db.url,
        VEND_PREFIX: prefix,
        PORT: String(port),
        HOST: "127.0.0.1",
        LOG_LEVEL: "warn",
        STREAM_MAX_BYTES: String(64 * 2 ** 20),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", r));
    try {
      const code = await Promise.race([exited, new Promise<"late">((r) => setTimeout(() => r("late"), 150_000))]);
      expect(code, out.slice(-3000)).toBe(0);
      expect(out).toMatch(/"terminalId": "T-0001",\s+"status": "active"/);
      expect(out).toMatch(/"state": "authorizing"/);
      const session = /\{\s+"sessionId": "[^"]+",\s+"state": "(\w+)",\s+"energyWh": ([\d.]+),\s+"feeCents": (\d+),\s+"stopReason": "(\w+)"\s+\}/.exec(out);
      expect(session, out.slice(-3000)).not.toBeNull();
      expect(session!.slice(1)).toMatchObject(["completed", expect.any(String), expect.any(String), "target_reached"]);
      expect(Number(session![2])).toBeGreaterThanOrEqual(20);
      for (const action of ["region.put", "franchisee.put", "gateway.put", "terminal.put", "tariff.add", "wallet.topup"])
        expect(out).toContain(`"action": "${action}"`);
      expect(out).toContain('"actor": "ops-1"');
    } finally {
      try {
        process.kill(-child.pid!, "SIGTERM");
      } catch {
        // the group is gone already
      }
      // The platform stops its work in hand first; the database goes once nothing holds it.
      await until(async () => {
        try {
          process.kill(-child.pid!, 0);
          return false;
        } catch {
          return true;
        }
      }, 30_000, 200).catch(() => process.kill(-child.pid!, "SIGKILL"));
      await removeNatsState(prefix);
    }
  }, 200_000);
});

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const BIN = ["/usr/sbin/nats-server", "/usr/local/bin/nats-server", "/usr/bin/nats-server"].find(existsSync) ?? "nats-server";

async function waitPort(port: number, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const c = createConnection({ host: "127.0.0.1", port });
      c.once("connect", () => (c.destroy(), r(true)));
      c.once("error", () => r(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nats-server on ${port} did not start`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface BenchNats {
  url: string;
  /** How the store is synced: "default" or why the sync run could not be made. */
  mode: string;
  stop(): Promise<void>;
}

/**
 * A nats-server whose JetStream store sits on an ext4 file system mounted `sync`, so every write
 * reaches the disk before the server acknowledges: what `sync_interval: always` (nats-server 2.10+)
 * does, on the 2.9 server Debian ships, which lacks the option. Needs root and loop devices.
 */
export async function syncedNats(port: number): Promise<BenchNats> {
  const dir = mkdtempSync(join(tmpdir(), "vv-sync-"));
  const img = join(dir, "store.img");
  const mnt = join(dir, "mnt");
  mkdirSync(mnt);
  execFileSync("dd", ["if=/dev/zero", `of=${img}`, "bs=1M", "count=2048", "status=none"]);
  execFileSync("mkfs.ext4", ["-q", img]);
  execFileSync("mount", ["-o", "loop,sync", img, mnt]);
  const child: ChildProcess = spawn(BIN, ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", mnt], { stdio: "ignore" });
  await waitPort(port);
  return {
    url: `nats://127.0.0.1:${port}`,
    mode: "store on an ext4 file system mounted sync (every write on disk before the ack)",
    async stop() {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
      execFileSync("umount", [mnt]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

/** Blocks are 20 ports wide (offsets 0-19), from 6100 to 7880: below Linux's ephemeral range. */
const FIRST = 6100;
const WIDTH = 20;
const BLOCKS = 90;
const LOCKS = join(tmpdir(), "vv-port-blocks");

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Claims block `base` for this process with a lock file made with O_EXCL. A lock whose process
 * is gone is stale and taken over. Why a lock and not only a bind test: two test files that
 * pick the same block at the same moment both find it free, then their servers collide.
 */
function claim(base: number): boolean {
  mkdirSync(LOCKS, { recursive: true });
  const path = join(LOCKS, String(base));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return true;
    } catch {
      let owner = NaN;
      try {
        owner = Number(readFileSync(path, "utf8"));
      } catch {
        continue; // released meanwhile: try again
      }
      if (Number.isInteger(owner) && owner > 0 && alive(owner)) return false;
      rmSync(path, { force: true }); // stale: its process died without releasing it
    }
  }
  return false;
}

/** Gives block `base` back (a formation or cluster that stopped). */
export function releasePortBlock(base: number): void {
  const path = join(LOCKS, String(base));
  try {
    if (Number(readFileSync(path, "utf8")) === process.pid) rmSync(path, { force: true });
  } catch {
    // not held
  }
}

/**
 * A base port whose `base + offset` ports (offsets 0-19) are all free now and held for this
 * process until releasePortBlock(base) or its exit (a PostgreSQL formation's monitor and nodes, or
 * a NATS cluster's client, route and monitoring ports, take consecutive ports from it).
 */
export async function freePortBlock(offsets: number[]): Promise<number> {
  if (offsets.some((o) => !Number.isInteger(o) || o < 0 || o >= WIDTH)) throw new Error(`port offsets must be 0-${WIDTH - 1}`);
  const free = (port: number) =>
    new Promise<boolean>((res) => {
      const s = createServer();
      s.once("error", () => res(false));
      s.listen(port, "127.0.0.1", () => s.close(() => res(true)));
    });
  const start = Math.floor(Math.random() * BLOCKS);
  for (let i = 0; i < BLOCKS; i++) {
    const base = FIRST + ((start + i) % BLOCKS) * WIDTH;
    if (!claim(base)) continue;
    let all = true;
    for (const o of offsets) if (!(all = await free(base + o))) break;
    if (all) return base;
    releasePortBlock(base);
  }
  throw new Error("no free port block from 6100 to 7899");
}

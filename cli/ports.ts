import { createServer } from "node:net";

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

/**
 * A base port from 6100 to 6890, in steps of 10, whose `base + offset` ports are all free now
 * (a PostgreSQL formation's monitor and nodes take consecutive ports from it).
 */
export async function freePortBlock(offsets: number[]): Promise<number> {
  const free = (port: number) =>
    new Promise<boolean>((res) => {
      const s = createServer();
      s.once("error", () => res(false));
      s.listen(port, "127.0.0.1", () => s.close(() => res(true)));
    });
  for (let i = 0; i < 50; i++) {
    const base = 6100 + Math.floor(Math.random() * 80) * 10;
    let all = true;
    for (const o of offsets) if (!(all = await free(base + o))) break;
    if (all) return base;
  }
  throw new Error("no free ports for the formation");
}

import { createConnection } from "node:net";
export { freePort, freePortBlock, releasePortBlock } from "../../cli/index.ts";

/** Whether something listens on 127.0.0.1:port now. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise<boolean>((r) => {
    const c = createConnection({ host: "127.0.0.1", port });
    c.once("connect", () => (c.destroy(), r(true)));
    c.once("error", () => r(false));
  });
}

/** Waits until 127.0.0.1:port is open (`up`) or closed, polling every 50 ms, at most `ms`. */
export async function waitPort(port: number, up: boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while ((await portOpen(port)) !== up) {
    if (Date.now() > end) throw new Error(`port ${port} did not become ${up ? "open" : "closed"}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

import { spawn, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";
import { freePort } from "./ports.ts";

export interface PlatformProcess extends AsyncDisposable {
  url: string;
  child: ChildProcess;
  /** Null while the process runs; its exit code (or signal) once it ended. */
  exited(): { code: number | null; signal: NodeJS.Signals | null } | null;
  /** Everything it wrote to stdout and stderr (pino JSON lines, and any crash report). */
  output(): string;
  /** SIGTERM, as an operator's stop; resolves when it has exited. */
  stop(): Promise<void>;
}


/**
 * `npm start` as a process of its own (node --import tsx cli/main.ts, one process: tsx's own
 * launcher would SIGKILL the platform when it is too busy to confirm a signal within 60 ms), so that a test can see whether it stays
 * alive: an unhandled error ends this process where, inside the test's worker, it would only be
 * reported. `env` is its whole configuration (with PORT and HOST chosen here).
 */
export async function platformProcess(env: Record<string, string>, o: { parts?: string } = {}): Promise<PlatformProcess> {
  const port = await freePort();
  const root = resolve(import.meta.dirname, "../..");
  const child = spawn(process.execPath, ["--import", "tsx", "cli/main.ts", ...(o.parts ? ["--parts", o.parts] : [])], {
    cwd: root,
    // Without the control part, its ops port (/healthz, /metrics) is the one to watch.
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env, PORT: String(port), HOST: "127.0.0.1", ...(o.parts && !o.parts.includes("control") ? { METRICS_PORT: String(port) } : {}) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) =>
    child.once("exit", (code, signal) => {
      exit = { code, signal };
      r();
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const end = Date.now() + 60_000;
  for (;;) {
    if (exit) throw new Error(`the platform process exited at start (${JSON.stringify(exit)}):\n${out.slice(-4000)}`);
    const up = await fetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) break;
    if (Date.now() > end) {
      child.kill("SIGKILL");
      throw new Error(`the platform process did not serve HTTP in 60 s:\n${out.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const stop = async () => {
    if (exit) return;
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    await exited;
    clearTimeout(killer);
  };
  return {
    url,
    child,
    exited: () => exit,
    output: () => out,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

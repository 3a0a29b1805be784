import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { freePort, waitPort } from "./ports.ts";

const BIN = ["/usr/sbin/nats-server", "/usr/local/bin/nats-server", "/usr/bin/nats-server"].find(existsSync) ?? "nats-server";


export interface TestNatsServer extends AsyncDisposable {
  url: string;
  port: number;
  mqttPort: number | null;
  /** Stops the server (SIGTERM, as an operator's restart) and starts it again on the same store. */
  restart(downMs?: number): Promise<void>;
  /** Stops the server (SIGTERM) and keeps its store, until start(): an outage of a length the test decides. */
  halt(): Promise<void>;
  /** Starts a halted server again on the same port and store. */
  start(): Promise<void>;
  /** Freezes the server (SIGSTOP): its clients stay connected and hear nothing, as behind a hung peer. */
  pause(): void;
  /** Lets a paused server run again (SIGCONT). */
  resume(): void;
  stop(): Promise<void>;
}

/**
 * A nats-server of the test's own, with JetStream on a fresh store; optionally MQTT, extra
 * configuration text, and configuration files to include (nats-server 2.9 resolves an include
 * relative to the including file, even when absolute, so they are written relative here).
 */
export async function natsServer(o: { mqtt?: boolean; extra?: string; include?: string[]; jetstream?: string } = {}): Promise<TestNatsServer> {
  const dir = mkdtempSync(join(tmpdir(), "vv-nats-"));
  const port = await freePort();
  const mqttPort = o.mqtt ? await freePort() : null;
  const conf = join(dir, "nats.conf");
  writeFileSync(
    conf,
    [
      `listen: 127.0.0.1:${port}`,
      `server_name: vv_test_${port}`,
      `jetstream {\n  store_dir: "${join(dir, "js")}"\n  ${o.jetstream ?? ""}\n}`,
      mqttPort ? `mqtt { listen: 127.0.0.1:${mqttPort} }` : "",
      o.extra ?? "",
      ...(o.include ?? []).map((f) => `include "${relative(dir, f)}"`),
    ].join("\n"),
  );
  let child: ChildProcess;
  const start = async () => {
    child = spawn(BIN, ["-c", conf], { stdio: "ignore" });
    await waitPort(port, true);
    if (mqttPort) await waitPort(mqttPort, true);
  };
  const halt = async () => {
    if (child.exitCode !== null) return;
    child.kill("SIGCONT"); // a paused server could not stop
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await exited;
    await waitPort(port, false);
  };
  await start();
  const server: TestNatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    mqttPort,
    halt,
    start,
    pause: () => void child.kill("SIGSTOP"),
    resume: () => void child.kill("SIGCONT"),
    async restart(downMs = 500) {
      await halt();
      await new Promise((r) => setTimeout(r, downMs));
      await start();
    },
    async stop() {
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
    [Symbol.asyncDispose]() {
      return server.stop();
    },
  };
  return server;
}

import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { connect } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { configSchema, ConfigError, subjects } from "../../contracts/index.ts";
import { ensureTopology, reservedBytes } from "../../ingest/index.ts";
import { testDatabase } from "../helpers/database.ts";
import { natsServer } from "../helpers/nats-server.ts";
import { testPrefix } from "../helpers/env.ts";

const root = resolve(import.meta.dirname, "../..");

describe("stream storage", () => {
  it("the default limits fit a JetStream store of 1 GiB", async () => {
    await using nats = await natsServer({ jetstream: "max_file_store: 1GB" });
    const defaults = configSchema.parse({});
    expect(reservedBytes({ maxBytes: defaults.STREAM_MAX_BYTES, telemetryMaxAgeDays: 7 })).toBeLessThan(2 ** 30);
    await using nc = await connect({ servers: nats.url });
    await ensureTopology(nc, subjects(testPrefix()), { maxBytes: defaults.STREAM_MAX_BYTES, telemetryMaxAgeDays: defaults.TELEMETRY_MAX_AGE_DAYS });
  });

  it("a server that cannot reserve the streams' storage is named in one line with the setting to change", async () => {
    await using nats = await natsServer({ jetstream: "max_file_store: 64MB" });
    await using nc = await connect({ servers: nats.url });
    const err = await ensureTopology(nc, subjects(testPrefix()), { maxBytes: 256 * 2 ** 20, telemetryMaxAgeDays: 7 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/insufficient storage/);
    expect((err as Error).message).toMatch(/lower STREAM_MAX_BYTES/);
    expect((err as Error).message).not.toMatch(/\n/);
  });

  it("npm start against such a server exits with that one line, no stack trace", async () => {
    await using nats = await natsServer({ jetstream: "max_file_store: 64MB" });
    await using db = await testDatabase();
    const child = spawn(process.execPath, ["--import", "tsx", "cli/main.ts"], {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        NATS_URL: nats.url,
        DATABASE_URL: db.url,
        VEND_PREFIX: testPrefix(),
        VEND_JWT_SECRET: "test-secret-0123456789abcdef",
        PORT: "0",
        HOST: "127.0.0.1",
        LOG_LEVEL: "warn",
        STREAM_MAX_BYTES: String(256 * 2 ** 20),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.once("exit", r));
    expect(code).toBe(1);
    const lines = stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^NATS JetStream refused stream .*lower STREAM_MAX_BYTES/);
    expect(stderr).not.toMatch(/\s+at /);
  }, 60_000);
});

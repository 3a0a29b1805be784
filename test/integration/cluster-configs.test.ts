import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePortBlock } from "../helpers/ports.ts";
import { until } from "../helpers/platform.ts";

// The shipped three-machine configurations (ingest/server/cluster/) form a JetStream cluster: each
// node's files, with only the machine names and ports moved to loopback (and, on nats-server 2.9,
// the 2.10 key sync_interval dropped), started as three servers that elect a meta leader and serve
// MQTT.

const SHIPPED = resolve(import.meta.dirname, "../../ingest/server/cluster");
const BIN = ["/usr/sbin/nats-server", "/usr/local/bin/nats-server", "/usr/bin/nats-server"].find(existsSync) ?? "nats-server";
const dir = mkdtempSync(join(tmpdir(), "vv-cluster-conf-"));
const children: ChildProcess[] = [];

afterAll(async () => {
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : (c.once("exit", r), c.kill("SIGKILL"))))));
  rmSync(dir, { recursive: true, force: true });
});

describe("ingest/server/cluster", () => {
  it("three nodes from the shipped files elect a JetStream meta leader and take MQTT", async () => {
    // Client 0-2, routes 3-5, monitoring 6-8, MQTT 10-12 from the base.
    const base = await freePortBlock([0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12]);
    const version = await new Promise<string>((r) => {
      const c = spawn(BIN, ["--version"]);
      let out = "";
      c.stdout!.on("data", (d) => (out += d));
      c.once("exit", () => r(out));
    });
    const before210 = /v2\.[0-9]\./.test(version);
    for (const n of [1, 2, 3]) {
      const node = join(dir, `n${n}`);
      mkdirSync(node);
      let common = readFileSync(join(SHIPPED, "cluster-common.conf"), "utf8")
        .replace("listen: 0.0.0.0:4222", `listen: 127.0.0.1:${base + n - 1}`)
        .replace("http: 0.0.0.0:8222", `http: 127.0.0.1:${base + 5 + n}`)
        .replace("listen: 0.0.0.0:6222", `listen: 127.0.0.1:${base + 2 + n}`)
        .replace("listen: 0.0.0.0:1883", `listen: 127.0.0.1:${base + 9 + n}`)
        .replace("store_dir: /var/lib/nats-server", `store_dir: "${join(node, "js")}"`)
        .replace(/nats-route:\/\/nats-([123]):6222/g, (_, m: string) => `nats-route://127.0.0.1:${base + 2 + Number(m)}`);
      if (before210) common = common.replace(/^\s*sync_interval: always\s*$/m, "");
      // Each file as shipped but for what was moved: the per-node file untouched.
      const settings = common.split("\n").filter((l) => !/^\s*#/.test(l)).join("\n");
      expect(settings).not.toMatch(/0\.0\.0\.0|nats-[123]:/);
      writeFileSync(join(node, "cluster-common.conf"), common);
      writeFileSync(join(node, `nats-${n}.conf`), readFileSync(join(SHIPPED, `nats-${n}.conf`)));
      children.push(spawn(BIN, ["-c", join(node, `nats-${n}.conf`)], { stdio: "ignore" }));
    }
    const jsz = async (i: number) => (await (await fetch(`http://127.0.0.1:${base + 6 + i}/jsz`)).json()) as { meta_cluster?: { name?: string; leader?: string; cluster_size?: number } };
    // A leader may be elected by two before the third has joined: all three, agreeing, then.
    let seen: unknown = null;
    const meta = await until(async () => {
      const all = await Promise.all([0, 1, 2].map((i) => jsz(i).then((j) => j.meta_cluster, () => null)));
      seen = all;
      const m = all[0];
      return m?.leader && all.every((x) => x?.leader === m.leader && x?.cluster_size === 3) ? m : null;
    }, 45_000, 200).catch((e) => {
      throw new Error(`${(e as Error).message}; the servers said ${JSON.stringify(seen)}`);
    });
    expect(meta).toMatchObject({ name: "voltvend", cluster_size: 3 });
    expect(["voltvend-1", "voltvend-2", "voltvend-3"]).toContain(meta.leader);
    const varz = (await (await fetch(`http://127.0.0.1:${base + 6}/varz`)).json()) as { mqtt?: { port?: number }; server_name?: string };
    expect(varz).toMatchObject({ server_name: "voltvend-1", mqtt: { port: base + 10 } });
  }, 60_000);
});

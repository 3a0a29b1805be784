import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, natsServers } from "../../contracts/index.ts";
import { clusterNodeConfig } from "../../cli/index.ts";

describe("NATS_URL: one server or a cluster's, comma-separated", () => {
  it("splits a list, trims, and keeps each entry as written", () => {
    expect(natsServers("nats://127.0.0.1:4222")).toEqual(["nats://127.0.0.1:4222"]);
    expect(natsServers("nats://n1:4222, nats://n2:4222 ,n3:4222")).toEqual(["nats://n1:4222", "nats://n2:4222", "n3:4222"]);
    expect(natsServers("tls://n1:4222,wss://n2:443")).toEqual(["tls://n1:4222", "wss://n2:443"]);
  });

  it("refuses an empty list, another scheme, a path, and names the bad entry at start", () => {
    expect(() => natsServers(" , ")).toThrow(/no server/);
    expect(() => natsServers("nats://n1:4222,http://n2:4222")).toThrow(/"http:\/\/n2:4222"/);
    expect(() => natsServers("nats://n1:4222/x")).toThrow(/bad server/);
    expect(() => loadConfig({ NATS_URL: "nats://n1:4222,ftp://x" }, { demo: true })).toThrow(ConfigError);
    expect(() => loadConfig({ BACKUP_NATS_URL: "nats://b:4222,:::" }, { demo: true })).toThrow(/BACKUP_NATS_URL/);
    expect(loadConfig({ NATS_URL: "nats://n1:4222,nats://n2:4222" }, { demo: true }).NATS_URL).toBe("nats://n1:4222,nats://n2:4222");
  });
});

describe("the local cluster's server configuration", () => {
  it("names the server, its cluster, every route, and its own store", () => {
    const conf = clusterNodeConfig("voltvend-local", {
      serverName: "voltvend-local-2",
      listen: "127.0.0.1:4232",
      routeListen: "127.0.0.1:6232",
      routes: ["nats-route://127.0.0.1:6231", "nats-route://127.0.0.1:6232", "nats-route://127.0.0.1:6233"],
      storeDir: "/data/n2/js",
      http: "127.0.0.1:8232",
    });
    expect(conf).toContain("server_name: voltvend-local-2");
    expect(conf).toContain("listen: 127.0.0.1:4232");
    expect(conf).toMatch(/cluster \{\n {2}name: voltvend-local\n {2}listen: 127\.0\.0\.1:6232\n {2}routes: \[nats-route:\/\/127\.0\.0\.1:6231, .*6233\]\n\}/);
    expect(conf).toContain('store_dir: "/data/n2/js"');
    expect(conf).not.toContain("sync_interval");
    expect(clusterNodeConfig("c", { serverName: "a", listen: "x:1", routeListen: "x:2", routes: [], storeDir: "/s", syncAlways: true })).toContain("sync_interval: always");
  });
});

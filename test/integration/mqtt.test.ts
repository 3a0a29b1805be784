import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { natsServer, type TestNatsServer } from "../helpers/nats-server.ts";
import { seedFleet, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";

// An MQTT 3.1.1 gateway publishing into the platform through the NATS server's MQTT support: the
// server is the test's own, configured as docs/ingest-and-storage.md, "MQTT gateways" says (server_name,
// JetStream, mqtt).
let server: TestNatsServer;
let tp: TestPlatform;

beforeAll(async () => {
  server = await natsServer({ mqtt: true });
  tp = await testPlatform({ NATS_URL: server.url }, { parts: { cutoff: false } });
  await seedFleet(tp, { terminals: ["T1", "T2"] });
});
afterAll(async () => {
  await tp?.[Symbol.asyncDispose]();
  await server?.stop();
});

describe("MQTT gateways", () => {
  it("publish readings at QoS 1 on vend/tel/<gw>/<terminal> and batches on vend/telb/<gw>, stored like any other", async () => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${server.mqttPort}`, { protocolVersion: 4, clientId: "gw-G1", clean: true });
    const t0 = Date.now() - 60_000;
    for (let i = 0; i < 5; i++) {
      await client.publishAsync(`${tp.prefix}/tel/G1/T1`, JSON.stringify({ ts: t0 + i * 1000, seq: i, state: "on", currentA: 16.2, voltageV: 221, energyWh: 50 + i }), { qos: 1 });
    }
    await client.publishAsync(
      `${tp.prefix}/telb/G1`,
      JSON.stringify({ readings: [0, 1, 2].map((i) => ({ terminalId: "T2", ts: t0 + i * 1000, seq: i, state: "off", currentA: 0, voltageV: 220, energyWh: 10 })) }),
      { qos: 1 },
    );
    // A malformed one is dead-lettered, as from any gateway.
    await client.publishAsync(`${tp.prefix}/tel/G1/T1`, "garbage", { qos: 1 });
    await client.endAsync();

    const t1 = await until(async () => {
      const r = (await tp.api("GET", "/v1/admin/terminals/T1/readings")).body.readings;
      return r.length === 5 ? r : null;
    });
    expect(t1.map((r: { seq: number }) => r.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(t1[4]).toMatchObject({ energyWh: 54, currentA: 16.2, gatewayId: "G1" });
    await until(async () => (await tp.api("GET", "/v1/admin/terminals/T2/readings")).body.readings.length === 3);
    const metrics = await until(async () => {
      const m = await (await fetch(`${tp.p.url}/metrics`)).text();
      return /vend_readings_dead_lettered_total\{code="not_json"\} 1/.test(m) ? m : null;
    });
    expect(metrics).toContain("vend_readings_stored_total 8");
  });
});

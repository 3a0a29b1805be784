import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { subjects, type TerminalEvent } from "../../contracts/index.ts";
import { createGateway, type Gateway } from "../../cli/index.ts";
import { natsServer, type TestNatsServer } from "../helpers/nats-server.ts";
import { testPrefix } from "../helpers/env.ts";
import { until } from "../helpers/platform.ts";

/**
 * A terminal's own power_off (limit) is the only report of a stop the cloud did not make: a
 * gateway that cannot publish it (its NATS server is down) keeps it and sends it once it can.
 */

let server: TestNatsServer;
let nc: NatsConnection;
let gw: Gateway;
const prefix = testPrefix();
const s = subjects(prefix);

beforeAll(async () => {
  server = await natsServer();
  nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: s.streams.events, subjects: [s.wild.evt] });
});

afterAll(async () => {
  await gw?.stop();
  await nc?.close();
  await server?.stop();
});

async function storedEvents(): Promise<TerminalEvent[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(s.streams.events);
  const out: TerminalEvent[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++)
    out.push((await jsm.streams.getMessage(s.streams.events, { seq }))!.json<TerminalEvent>());
  return out;
}

describe("the simulated gateway's uplink", () => {
  it("publishes a limit stop made while its NATS server was down once the server is back", async () => {
    let now = 1_764_000_000_000;
    gw = createGateway({ nc, prefix, gatewayId: "G1", clock: () => now, onError: () => {} });
    const t = gw.addTerminal("T1", { currentA: 16, voltageV: 225 });
    await gw.flush();
    t.receive({ type: "power_on", cmdId: "C1", sessionId: "S1", limitS: 10 });
    await until(async () => (await storedEvents()).some((e) => e.type === "power_on_ack"));

    // Down for longer than a publish waits for its answer.
    const disconnected = (async () => {
      for await (const st of nc.status()) if (st.type === "disconnect") return;
    })();
    const restarted = server.restart(8_000);
    await disconnected;
    now += 20_000;
    gw.tick(); // the terminal stops at its limit; the event cannot get out now
    expect(t.relay).toBe("off");
    await restarted;

    const off = await until(async () => (await storedEvents()).find((e) => e.type === "power_off"), 30_000);
    expect(off).toEqual({ type: "power_off", sessionId: "S1", reason: "limit", energyWh: 100_010, ts: 1_764_000_010_000 });
  }, 60_000);
});

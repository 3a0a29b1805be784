import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NATS_URL } from "../helpers/env.ts";
import { seedFleet, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";

// Every kind detected from telemetry, from the gateway's readings to the fault on the
// franchisee's NATS subject and in its API. Readings are published by hand, one second of reading
// time apart, so each condition holds exactly as long as the test says.
let tp: TestPlatform;
let nc: NatsConnection;
let fr1: string;
const seen: { subject: string; data: any }[] = [];
const kinds = ["CUR", "LEAK", "VOLT", "POW", "BACK", "IDLE", "SHORT"];

beforeAll(async () => {
  tp = await testPlatform({}, { parts: { cutoff: false } });
  await seedFleet(tp, { terminals: kinds, profile: { faultDebounceS: 2, faultClearS: 2 } });
  nc = await connect({ servers: NATS_URL });
  const sub = nc.subscribe(`${tp.prefix}.fault.>`);
  void (async () => {
    for await (const m of sub) seen.push({ subject: m.subject, data: m.json() });
  })();
  fr1 = await tp.token("FR1", "franchisee");
  // Each terminal heard once, with nothing wrong and dated before any test's readings: once the
  // fault stage has written its live entry, the processors know it from the registry's bucket
  // (before that they drop its readings as an unknown terminal's).
  const heardAt = Date.now() - 120_000;
  for (const t of kinds) nc.publish(`${tp.prefix}.tel.G1.${t}`, JSON.stringify({ ...base, ts: heardAt, seq: 0 }));
  for (const t of kinds) await until(async () => (await tp.p.buckets.live.get(t)) !== null);
});
afterAll(async () => {
  await nc?.close();
  await tp?.[Symbol.asyncDispose]();
});

const base = { state: "off", currentA: 0, voltageV: 220, energyWh: 100 };

it.each([
  ["on_current_out_of_range", "CUR", [0, 1, 2].map(() => ({ state: "on", currentA: 15.5 })), { currentA: 15.5, rangeA: [16, 18] }],
  ["off_current_leak", "LEAK", [0, 1, 2].map(() => ({ currentA: 0.3 })), { currentA: 0.3, maxA: 0.1 }],
  ["voltage_out_of_range", "VOLT", [0, 1, 2].map(() => ({ voltageV: 250 })), { voltageV: 250, rangeV: [198, 242] }],
  ["power_mismatch", "POW", [0, 1, 2].map(() => ({ powerW: 500 })), { powerW: 500, vTimesIW: 0 }],
  ["register_backwards", "BACK", [{ energyWh: 100 }, { energyWh: 90 }], { energyWh: 90, previousWh: 100 }],
  ["relay_on_without_session", "IDLE", [0, 1, 2].map(() => ({ state: "on", currentA: 17 })), { state: "on" }],
] as const)("%s on %s reaches FR1's subject and API with its evidence", async (kind, terminal, readings, evidence) => {
  const t0 = Date.now() - 60_000;
  readings.forEach((r, i) => nc.publish(`${tp.prefix}.tel.G1.${terminal}`, JSON.stringify({ ...base, ...r, ts: t0 + i * 1000, seq: i + 1 })));
  const fault = await until(async () => {
    const list = (await tp.api("GET", "/v1/franchisee/faults?status=open", undefined, fr1)).body.faults as any[];
    return list.find((f) => f.terminalId === terminal && f.kind === kind);
  });
  expect(fault).toMatchObject({ status: "open", franchiseeId: "FR1", regionId: "R1", count: 1, evidence });
  await until(async () => seen.find((m) => m.data.faultId === fault.faultId));
  expect(seen.filter((m) => m.data.faultId === fault.faultId).every((m) => m.subject === `${tp.prefix}.fault.FR1.${terminal}`)).toBe(true);
});

describe("debounce", () => {
  it("a condition that lasts less than faultDebounceS of readings opens nothing", async () => {
    const t0 = Date.now() - 30_000;
    // Leak for one second of readings, then gone: below the 2 s debounce.
    const rs = [{ currentA: 0.5 }, { currentA: 0.5 }, { currentA: 0 }, { currentA: 0 }];
    rs.forEach((r, i) => nc.publish(`${tp.prefix}.tel.G1.SHORT`, JSON.stringify({ ...base, ...r, ts: t0 + i * 1000, seq: i + 1 })));
    // A leak of 2 s on the same kind of terminal opens (the control case, so the wait is long enough).
    [0.5, 0.5, 0.5].forEach((a, i) => nc.publish(`${tp.prefix}.tel.G1.SHORT`, JSON.stringify({ ...base, currentA: a, ts: t0 + 10_000 + i * 1000, seq: 10 + i })));
    const opened = await until(async () => {
      const list = (await tp.api("GET", "/v1/franchisee/faults", undefined, fr1)).body.faults as any[];
      return list.find((f) => f.terminalId === "SHORT");
    });
    // The first, one-second leak opened nothing: the one fault is the later episode's, opened at its third reading.
    expect(opened).toMatchObject({ kind: "off_current_leak", count: 1, openedAt: t0 + 12_000 });
    const all = (await tp.api("GET", "/v1/franchisee/faults", undefined, fr1)).body.faults as any[];
    expect(all.filter((f) => f.terminalId === "SHORT")).toHaveLength(1);
  });
});

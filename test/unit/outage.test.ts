import { JetStreamApiError } from "@nats-io/jetstream";
import { jserrors } from "@nats-io/jetstream/internal";
import { errors } from "@nats-io/nats-core";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { unavailableDependency } from "../../ingest/index.ts";

const sqlState = (code: string) => Object.assign(new pg.DatabaseError("x", 0, "error"), { code });
const socket = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code, errno: -111, syscall: "connect" });
const jsApi = (err_code: number, code: number) => new JetStreamApiError({ err_code, code, description: "x" });

describe("unavailableDependency", () => {
  it.each([
    ["admin shutdown (pg_terminate_backend)", sqlState("57P01"), "database"],
    ["crash shutdown", sqlState("57P02"), "database"],
    ["cannot connect now (starting up)", sqlState("57P03"), "database"],
    ["too many connections", sqlState("53300"), "database"],
    ["connection failure (class 08)", sqlState("08006"), "database"],
    ["connection refused", socket("ECONNREFUSED"), "database"],
    ["connection reset", socket("ECONNRESET"), "database"],
    ["pg: connection ended", new Error("Connection terminated unexpectedly"), "database"],
    ["pg-pool: connect timeout", new Error("timeout exceeded when trying to connect"), "database"],
    ["pg: client unusable", new Error("Client has encountered a connection error and is not queryable"), "database"],
    ["NATS request timeout", new errors.TimeoutError(), "nats"],
    ["NATS disconnected (rtt)", new errors.RequestError("connection disconnected"), "nats"],
    ["NATS no responders", new errors.RequestError("no responders", { cause: new errors.NoRespondersError("$JS.API.INFO") }), "nats"],
    ["NATS closed", new errors.ClosedConnectionError(), "nats"],
    ["JetStream no responders", new jserrors.JetStreamNotEnabled("jetstream is not enabled"), "nats"],
    ["JetStream temporarily unavailable", jsApi(10008, 503), "nats"],
    ["wrapped in a cause", new Error("publish failed", { cause: new errors.TimeoutError() }), "nats"],
  ])("%s: %s", (_what, err, dependency) => {
    expect(unavailableDependency(err)).toBe(dependency);
  });

  it.each([
    ["unique violation", sqlState("23505")],
    ["serialization failure", sqlState("40001")],
    ["syntax error", sqlState("42601")],
    ["statement timeout (a slow query, not a lost server)", sqlState("57014")],
    ["consumer not found", jsApi(10014, 404)],
    ["wrong last sequence", jsApi(10071, 400)],
    ["a bug", new TypeError("x is undefined")],
    ["not an error", "connection terminated"],
    ["nothing", undefined],
  ])("%s is not an outage", (_what, err) => {
    expect(unavailableDependency(err)).toBeNull();
  });
});

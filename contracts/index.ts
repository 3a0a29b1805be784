/** The wire contracts of protocol v1 and the billing rules it defines; every part imports them from here. */
export * from "./ids.ts";
export * from "./bounds.ts";
export * from "./wire.ts";
export * from "./http.ts";
export * from "./subjects.ts";
export * from "./config.ts";
export * from "./billing/rational.ts";
export * from "./billing/zoned.ts";
export * from "./billing/tariff.ts";
export * from "./billing/meter.ts";
export * from "./billing/hold.ts";
export * from "./billing/limits.ts";
export * from "./arm.ts";
export * from "./admin.ts";

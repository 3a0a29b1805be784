import { describe, expect, it } from "vitest";
import { loadConfig, parseDatabaseUrl } from "../../contracts/index.ts";

describe("DATABASE_URL with several hosts", () => {
  it("splits the libpq form into one URL per host, keeping user, database and parameters", () => {
    const d = parseDatabaseUrl("postgres://app:s%40cret@db1:6001,db2,[::1]:6003/voltvend?sslmode=require");
    expect(d.hosts).toEqual([
      { host: "db1", port: 6001 },
      { host: "db2", port: 5432 },
      { host: "[::1]", port: 6003 },
    ]);
    expect(d.urlFor(0)).toBe("postgres://app:s%40cret@db1:6001/voltvend?sslmode=require");
    expect(d.urlFor(1)).toBe("postgres://app:s%40cret@db2:5432/voltvend?sslmode=require");
    expect(new URL(d.urlFor(2)).hostname).toBe("[::1]");
  });

  it("takes one host as before", () => {
    expect(parseDatabaseUrl("postgres://postgres@127.0.0.1:5432/voltvend").hosts).toEqual([{ host: "127.0.0.1", port: 5432 }]);
  });

  it("names DATABASE_URL when a host is malformed", () => {
    expect(() => loadConfig({ DATABASE_URL: "postgres://h1:6001,:x/db" }, { demo: true })).toThrow(/DATABASE_URL/);
    expect(() => loadConfig({ DATABASE_URL: "mysql://h/db" }, { demo: true })).toThrow(/DATABASE_URL/);
  });
});

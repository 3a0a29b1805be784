import { describe, expect, it } from "vitest";
import { NoPrimaryError, standbyResolver, STANDBY_RECHECK_MS, type HostProbes } from "../../control/internal.ts";

// Where reports read (READ_DATABASE_URL, control/primary.ts): the first standby, the primary when
// none answers, and the hosts asked again after STANDBY_RECHECK_MS, so that a failover (the
// standby promoted, the old primary back as the standby) moves the reads back onto a standby.
// The hosts' roles are a table the test changes; time is a number it moves.

const URL = "postgres://app@n1:6001,n2:6002/voltvend";
const n1 = "postgres://app@n1:6001/voltvend";
const n2 = "postgres://app@n2:6002/voltvend";

function formation(roles: Record<string, "primary" | "standby" | "down">) {
  let asked = 0;
  const probes: HostProbes = {
    isPrimary: async (u) => (asked++, roles[u] === "primary"),
    isStandby: async (u) => (asked++, roles[u] === "standby"),
  };
  return { roles, probes, asked: () => asked };
}

describe("the read resolver (READ_DATABASE_URL)", () => {
  it("reads from the standby, keeps it for STANDBY_RECHECK_MS, and after a failover finds the new standby", async () => {
    let now = 1_000_000;
    const f = formation({ [n1]: "primary", [n2]: "standby" });
    const r = standbyResolver(URL, () => now, f.probes);
    expect(await r.primaryUrl()).toBe(n2);
    const asked = f.asked();
    now += STANDBY_RECHECK_MS - 1;
    expect(await r.primaryUrl()).toBe(n2);
    expect(f.asked(), "kept: no probe within the interval").toBe(asked);

    // n1 dies, n2 is promoted: no standby, the reports read from the primary.
    f.roles[n1] = "down";
    f.roles[n2] = "primary";
    now += 2;
    expect(await r.primaryUrl()).toBe(n2);
    // n1 is back as the standby: after the interval the reads go there again.
    f.roles[n1] = "standby";
    now += STANDBY_RECHECK_MS;
    expect(await r.primaryUrl()).toBe(n1);
  });

  it("finds a standby that was promoted while it was kept (its connections survive the promotion)", async () => {
    let now = 0;
    const f = formation({ [n1]: "primary", [n2]: "standby" });
    const r = standbyResolver(URL, () => now, f.probes);
    expect(await r.primaryUrl()).toBe(n2);
    // The failover and the old primary's return, both within one interval.
    f.roles[n2] = "primary";
    f.roles[n1] = "standby";
    now += STANDBY_RECHECK_MS;
    expect(await r.primaryUrl(), "not stuck on the promoted node").toBe(n1);
  });

  it("says no host answers when none does, and takes one host as it is", async () => {
    const f = formation({ [n1]: "down", [n2]: "down" });
    await expect(standbyResolver(URL, () => 0, f.probes).primaryUrl()).rejects.toThrow(NoPrimaryError);
    const one = formation({});
    expect(await standbyResolver("postgres://app@n1:6001/voltvend", () => 10 * STANDBY_RECHECK_MS, one.probes).primaryUrl()).toBe(n1);
    expect(one.asked(), "one host: no probe").toBe(0);
  });
});

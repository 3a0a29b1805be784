import { describe, expect, it } from "vitest";
import { NotificationRefused, SimPaymentProvider } from "../../control/internal.ts";

// The simulated provider's check of a notification (control/payments/sim-provider.ts): a refusal
// that another error caused keeps that error as its `cause`.
const NOW = 1_700_000_000_000;
const sim = new SimPaymentProvider({ clock: () => NOW, maxAgeMs: 300_000 });

/** What verify throws for a notification of this body, signed by the provider. */
function refusal(body: string): NotificationRefused {
  try {
    sim.verify(sim.sign(body), NOW);
  } catch (e) {
    if (e instanceof NotificationRefused) return e;
    throw e;
  }
  throw new Error("verify took it");
}

describe("SimPaymentProvider.verify", () => {
  it("refuses a signed body that is not JSON with 400, the parse error kept as the cause", () => {
    const err = refusal("not json");
    expect(err).toMatchObject({ status: 400, code: "invalid_notification" });
    expect(err.cause).toBeInstanceOf(SyntaxError);
  });

  it("refuses a signed JSON body that is not a notification, the schema's error kept as the cause", () => {
    const err = refusal(JSON.stringify({ id: "n1", eventType: "TRANSACTION.SUCCESS" }));
    expect(err).toMatchObject({ status: 400, code: "invalid_notification" });
    expect(err.cause).toMatchObject({ name: "ZodError" });
  });
});

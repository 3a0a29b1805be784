/** Where the real servers of the test run are; the only environment the tests read. */
export const PG_ADMIN_URL = process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
export const NATS_URL = process.env.TEST_NATS_URL ?? "nats://127.0.0.1:4222";
export const TEMPLATE_DB = "voltvend_test_template";

export function dbUrl(name: string): string {
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

export const rand = () => Math.random().toString(36).slice(2, 10).padEnd(8, "0");

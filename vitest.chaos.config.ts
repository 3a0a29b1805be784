import { defineConfig } from "vitest/config";

/** The chaos suite's short form (`npm run test:chaos`, run by .ci/run after `npm test`). */
export default defineConfig({
  test: {
    include: ["test/chaos/**/*.test.ts"],
    setupFiles: ["test/helpers/setup.ts"],
    testTimeout: 60_000,
    // The whole run happens in one beforeAll: start, every fault in turn, drain.
    hookTimeout: 20 * 60_000,
    pool: "forks",
    maxWorkers: 1,
    reporters: ["default"],
  },
});

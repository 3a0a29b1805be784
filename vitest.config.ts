import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The chaos suite runs on its own (vitest.chaos.config.ts), after the rest.
    exclude: ["test/chaos/**", "**/node_modules/**"],
    globalSetup: ["test/helpers/global-setup.ts"],
    // In each test file's process: what the entry points do at start (test/helpers/setup.ts).
    setupFiles: ["test/helpers/setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Two cores: the servers under test need one.
    maxWorkers: 2,
    reporters: ["default"],
  },
});
